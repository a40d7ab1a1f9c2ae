#!/usr/bin/env bash
# "Train short, test long": equal models with sinusoidal, learned, RoPE and ALiBi positions are
# trained at L_train = 128 on the KJV corpus, evaluated at L = 128 ... 2048 on its held-out part,
# and RoPE and ALiBi are also given a second stage at 512 (`train --init`). Writes the table,
# the plot and the wall time to docs/experiments/extrapolation.md (full run, about 40 minutes
# on 2 cores) or, with --quick (a few minutes; CI runs it), to run/experiments/extrapolation/.
# Usage: experiments/extrapolation/run.sh [--quick] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    *) echo "run.sh: error: unknown argument '$1' (expected --quick or --out DIR)" >&2; exit 1 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  steps=60; steps2=10; layers=2; lengths=128,256,512; max_tokens=2048; eval_batches=2
  out=${out:-run/experiments/extrapolation}
else
  steps=1200; steps2=150; layers=4; lengths=128,256,512,1024,2048; max_tokens=16384; eval_batches=8
  out=${out:-docs/experiments}
fi
work=run/experiments/extrapolation-work$([ "$quick" = 1 ] && echo -quick || true)
bin=./build/longctx
[ -x "$bin" ] || { echo "run.sh: error: $bin is missing; build first (cmake --build build)" >&2; exit 1; }
[ -f data/kjv.txt ] || bash scripts/corpus.sh
mkdir -p "$work" "$out"
start=$(date +%s)
log="$work/commands.txt"
: > "$log"
run() { echo "$*" >> "$log"; "$@"; }

# One tokenizer for all models, trained on the training part of the corpus.
run $bin tokenizer train --data data/kjv.txt --vocab-size 4096 -o "$work/tok.gguf" > /dev/null
common=(--preset tiny --layers "$layers" --data data/kjv.txt --tokenizer "$work/tok.gguf" --ctx 128 --batch 16
        --steps "$steps" --seed 1 --eval-every 0 --eval-batches "$eval_batches" --save-every 0 --json)
evals=()
for pos in sinusoidal learned rope alibi; do
  echo "== $pos: train at 128 for $steps steps"
  run $bin train "${common[@]}" --pos "$pos" -o "$work/$pos.gguf" | tail -1
  # Learned positions stop at their table (128): evaluate only there.
  l=$lengths; [ "$pos" = learned ] && l=128
  run $bin eval -m "$work/$pos.gguf" --data data/kjv.txt --lengths "$l" --max-tokens "$max_tokens" --json \
    > "$work/eval-$pos.json"
  evals+=("$pos=$work/eval-$pos.json")
done
for pos in rope alibi; do
  echo "== $pos: second stage at 512 for $steps2 steps"
  run $bin train --init "$work/$pos.gguf" --data data/kjv.txt --ctx 512 --batch 4 --steps "$steps2" --warmup 10 \
    --lr 5e-4 --min-lr 1e-4 --seed 2 --eval-every 0 --eval-batches "$eval_batches" --save-every 0 --json \
    -o "$work/$pos-512.gguf" | tail -1
  run $bin eval -m "$work/$pos-512.gguf" --data data/kjv.txt --lengths "$lengths" --max-tokens "$max_tokens" --json \
    > "$work/eval-$pos-512.json"
  evals+=("$pos two-stage 128->512=$work/eval-$pos-512.json")
done
end=$(date +%s)
/usr/bin/python3 experiments/extrapolation/report.py --out "$out" --seconds $((end - start)) --steps "$steps" \
  --steps2 "$steps2" --layers "$layers" --commands "$log" $([ "$quick" = 1 ] && echo --quick) "${evals[@]}"
