#!/usr/bin/env bash
# Training throughput: longctx against the same model in PyTorch 2.x from pip (bench/setup_venv.sh),
# one after the other on the same machine. longctx runs with fp32 products and with bf16 ones
# (--precision bf16: AMX tiles, bf16 operands, fp32 sums, fp32 weights and optimizer). PyTorch runs
# its fused attention (scaled_dot_product_attention) in fp32 and under bf16 autocast, at 1 and 2
# intra-op threads; its best setting is the reference. OpenBLAS is given its AVX-512 kernels
# (OPENBLAS_CORETYPE; see src/core/blas_setup.h).
# Usage: bench/train_bench.sh [preset=small] [steps=10]
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-small}
steps=${2:-10}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
py=$(bash bench/setup_venv.sh)
lines=()
for p in fp32 bf16; do
  # bf16 needs AMX-BF16; on a CPU without it longctx says so and the row is left out.
  if row=$(./build/longctx bench train --preset "$preset" --batch 8 --ctx 256 --steps "$steps" -t 2 --precision "$p" --json); then
    lines+=("$row")
  else
    echo "train_bench: longctx --precision $p left out (see the error above)" >&2
  fi
done
for t in 1 2; do
  for dt in fp32 bf16; do
    lines+=("$("$py" bench/torch_train.py --preset "$preset" --batch 8 --ctx 256 --steps "$steps" --threads "$t" --sdpa \
      $([ $dt = bf16 ] && echo --bf16) | tail -1)")
  done
done
printf '%s\n' "${lines[@]}"
python3 - "${lines[@]}" <<'PY'
import json, sys
rows = [json.loads(x) for x in sys.argv[1:]]
ours = [r for r in rows if r["impl"] == "longctx"]
theirs = [r for r in rows if r["impl"] == "pytorch"]
best = max(theirs, key=lambda r: r["tokens_per_s"])
print("| engine | math | threads | tokens/s | step ms | vs PyTorch's best |")
print("|---|---|---|---|---|---|")
for r in ours:
    print(f"| longctx | {r['precision']} products | {r['threads']} | {r['tokens_per_s']:.0f} | {r['step_ms']:.0f} | "
          f"{r['tokens_per_s'] / best['tokens_per_s']:.2f}x |")
for r in theirs:
    math = ("bf16 autocast" if r["bf16"] else "fp32") + (", SDPA" if r["sdpa"] else "")
    print(f"| PyTorch {r['torch']} | {math} | {r['threads']} | {r['tokens_per_s']:.0f} | {r['step_ms']:.0f} | "
          f"{r['tokens_per_s'] / best['tokens_per_s']:.2f}x |")
PY
