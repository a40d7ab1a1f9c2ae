#!/usr/bin/env bash
# The strongest Python references for bench/ (never for scripts/test.sh: about 5 GB): PyTorch 2.x
# from PyPI with transformers and sentence-transformers, in the git-ignored virtual environment
# .pydeps/bench-venv. Idempotent; prints the interpreter's path last.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.pydeps/bench-venv
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch, transformers, sentence_transformers" 2>/dev/null; then
  echo "$venv/bin/python"
  exit 0
fi
mkdir -p .pydeps
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "torch>=2.4" "transformers>=4.44" \
  "sentence-transformers>=3" numpy >&2
"$venv/bin/python" -c "import torch, transformers, sentence_transformers; print('bench venv: torch', torch.__version__, \
'transformers', transformers.__version__, 'sentence-transformers', sentence_transformers.__version__)" >&2
echo "$venv/bin/python"
