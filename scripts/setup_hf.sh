#!/usr/bin/env bash
# Installs Hugging Face `transformers` (pinned) for Debian's /usr/bin/python3, which has
# python3-torch, into the git-ignored .pydeps/hf (PYTHONPATH=.pydeps/hf), with `gguf` (to rebuild
# SmolLM2 as a Hugging Face model from its GGUF): the reference the Hugging Face loading test
# (tests/hf/) compares longctx against. Idempotent; about a minute.
# The numpy pip would bring along is removed: Debian's torch is built against Debian's numpy.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=.pydeps/hf
if PYTHONPATH=$dir /usr/bin/python3 -c "import torch, transformers, gguf, jinja2, sys; sys.exit(transformers.__version__ != '4.40.2')" 2>/dev/null; then
  echo "setup: transformers 4.40.2 present in $dir"
  exit 0
fi
echo "setup: pip installing transformers 4.40.2 for /usr/bin/python3 into $dir"
rm -rf "$dir"
/usr/bin/python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$dir" \
  "transformers==4.40.2" "tokenizers==0.19.1" "gguf==0.19.0" "jinja2" 2>&1 | grep -v "dependency resolver\|requires numpy\|^$" || true
rm -rf "$dir"/numpy "$dir"/numpy-* "$dir"/numpy.libs "$dir"/bin
PYTHONPATH=$dir /usr/bin/python3 -c "import torch, transformers" ||
  { echo "setup: transformers did not import with Debian's torch"; exit 1; }
