#!/usr/bin/env bash
# Attention time and peak memory against sequence length: `longctx bench attention` and
# PyTorch 2.x from pip (bench/setup_venv.sh) in the same run on the same machine: its fused
# scaled_dot_product_attention and the standard formula (bench/torch_attention.py), then the
# ratio table (bench/attention_report.py) and the plot docs/attention_bench.png
# (tools/plot_attention.py).
# Usage: bench/attention_bench.sh [longctx lengths] [PyTorch lengths] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
lens=${1:-1024,2048,4096,8192,16384,32768,65536}
tlens=${2:-1024,2048,4096,8192}
threads=${3:-2}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
out=run/bench
mkdir -p "$out"
./build/longctx bench attention --seq-len "$lens" -t "$threads" --json > "$out/attention_longctx.json"
py=$(bash bench/setup_venv.sh)
"$py" bench/torch_attention.py --seq-len "$tlens" --threads "$threads" --json "$out/attention_torch.json"
/usr/bin/python3 bench/attention_report.py "$out/attention_longctx.json" "$out/attention_torch.json"
/usr/bin/python3 tools/plot_attention.py "$out/attention_longctx.json" "$out/attention_torch.json" -o docs/attention_bench.png
