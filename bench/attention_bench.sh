#!/usr/bin/env bash
# Attention time and peak memory against sequence length: `longctx bench attention` and
# PyTorch 2.x from pip (bench/setup_venv.sh) in the same run on the same machine: its fused
# scaled_dot_product_attention in fp32 and bf16 and the standard formula
# (bench/torch_attention.py), our bf16 tile path where the CPU has AMX-BF16, then the
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
# The bf16 tile products (AMX-BF16 only) at PyTorch's lengths, causal.
extra=()
rm -f "$out/attention_longctx_bf16.json"
if ./build/longctx bench attention --precision bf16 --impl tiled-causal --seq-len "$tlens" -t "$threads" --json \
     > "$out/attention_longctx_bf16.json"; then
  extra=("$out/attention_longctx_bf16.json")
else
  rm -f "$out/attention_longctx_bf16.json"
  echo "attention_bench: longctx --precision bf16 left out (see the error above)"
fi
py=$(bash bench/setup_venv.sh)
"$py" bench/torch_attention.py --seq-len "$tlens" --threads "$threads" --json "$out/attention_torch.json"
/usr/bin/python3 bench/attention_report.py "$out/attention_longctx.json" "$out/attention_torch.json" "${extra[@]}"
/usr/bin/python3 tools/plot_attention.py "$out/attention_longctx.json" "$out/attention_torch.json" "${extra[@]}" \
  -o docs/attention_bench.png
