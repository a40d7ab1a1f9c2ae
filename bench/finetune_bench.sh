#!/usr/bin/env bash
# Fine-tuning SmolLM2-135M-Instruct (Q4_1) on 2 cores: tokens/s, trainable parameters and peak
# memory of
#   - block expansion (`expand --every 10`: 3 added layers in F32) training only the added layers,
#     the Q4_1 / Q8_0 matrices frozen and read in place;
#   - the original's last 4 layers trained (the rest frozen, read in place);
#   - a LoRA adapter of rank 16 on every matrix (the base frozen, read in place);
#   - every tensor trained (the whole model in fp32, AdamW state for all).
# Usage: bench/finetune_bench.sh [steps=8] [ctx=256] [batch=4]. Corpus: data/kjv.txt (bash scripts/corpus.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-8}; ctx=${2:-256}; batch=${3:-4}
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
corpus=${LONGCTX_CORPUS:-data/kjv.txt}
[ -f "$model" ] || bash scripts/fetch_model.sh
[ -f "$corpus" ] || { echo "finetune_bench: $corpus is missing (bash scripts/corpus.sh)"; exit 1; }
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
head -c 1500000 "$corpus" > "$work/corpus.txt"
./build/longctx expand -m "$model" -o "$work/expanded.gguf" --every 10 > /dev/null
run() {  # name, init, extra flags...
  local name=$1 init=$2; shift 2
  /usr/bin/time -f "%M" -o "$work/rss" ./build/longctx train --data "$work/corpus.txt" --init "$init" --steps "$steps" \
    --ctx "$ctx" --batch "$batch" --lr 1e-4 --min-lr 1e-5 --warmup 2 --eval-every 0 --eval-batches 1 -t 2 --json \
    -o "$work/out.gguf" "$@" > "$work/log"
  python3 - "$name" "$work/log" "$(cat "$work/rss")" <<'PY'
import json, sys
name, log, rss = sys.argv[1], sys.argv[2], int(sys.argv[3])
ev = [json.loads(l) for l in open(log) if l.startswith("{")]
tr = next(e for e in ev if e["event"] == "trainable")
s = next(e for e in ev if e["event"] == "summary")
print(f"| {name} | {tr['params']/1e6:.2f}M of {tr['total_params']/1e6:.1f}M | {s['tokens_per_s']:.0f} | {rss/1024:.0f} MiB |")
PY
}
echo "| SmolLM2-135M Q4_1, ctx $ctx, batch $batch, $steps steps | trainable parameters | tokens/s | peak RSS |"
echo "|---|---|---|---|"
run "expanded (+3 layers), --train-only new" "$work/expanded.gguf" --train-only new
run "original, --train-only blocks=26-29" "$model" --train-only blocks=26-29
run "original, LoRA r=16 on every matrix" "$model" --lora r=16,alpha=32,targets=q,k,v,o,gate,up,down
run "original, everything (fp32)" "$model"
