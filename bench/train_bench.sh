#!/usr/bin/env bash
# Training throughput: longctx against the same model in PyTorch (Debian's python3-torch), one
# after the other on the same machine. PyTorch runs at 1 and 2 intra-op threads and the better
# one is the reference. OpenBLAS is given its AVX-512 kernels in both (OPENBLAS_CORETYPE; see
# src/core/blas_setup.h). Usage: bench/train_bench.sh [preset=small] [steps=10]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-small}
steps=${2:-10}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
ours=$(./build/longctx bench train --preset "$preset" --batch 8 --ctx 256 --steps "$steps" -t 2 --json)
echo "$ours"
best=0
for t in 1 2; do
  line=$(/usr/bin/python3 bench/torch_train.py --preset "$preset" --batch 8 --ctx 256 --steps "$steps" --threads "$t" | tail -1)
  echo "$line"
  tps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$line")
  best=$(python3 -c "print(max($best, $tps))")
done
python3 - "$ours" "$best" <<'PY'
import json, sys
o = json.loads(sys.argv[1]); best = float(sys.argv[2])
print(f"| test | longctx tokens/s | PyTorch best tokens/s | ratio | longctx MFU (vs sgemm {o['sgemm_gflops']:.0f} GFLOP/s) |")
print(f"| train {o['preset']} b{o['batch']} c{o['ctx']} | {o['tokens_per_s']:.0f} | {best:.0f} | {o['tokens_per_s']/best:.2f}x | {100*o['mfu']:.0f}% |")
PY
