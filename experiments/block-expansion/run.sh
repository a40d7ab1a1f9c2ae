#!/usr/bin/env bash
# Block expansion (LLaMA Pro) against the other ways to teach a model a new domain, at equal
# trainable parameters and equal steps: C source (the machine's /usr/include headers) taught to
#   - SmolLM2-135M-Instruct (Q4_1; the frozen matrices read in place) and
#   - a 4-layer model of our own trained on the KJV first,
# by (1) block expansion, training only the added layers; (2) training only the last layers;
# (3) LoRA on every matrix, its rank chosen for about the same parameter count; (4) full
# fine-tuning (every tensor; the reference with many more parameters). Measured: held-out loss
# on the new domain (C) and on the old one (KJV for both; the KJV is what our model knew, and
# English prose what SmolLM2 knew) before and after: learning and forgetting.
# Writes docs/experiments/block-expansion.md + .png (or, with --quick, run/experiments/block-expansion/).
# Usage: experiments/block-expansion/run.sh [--quick] [--out DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0; out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    *) echo "run.sh: error: unknown argument '$1' (expected --quick or --out DIR)" >&2; exit 1 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  steps=4; base_steps=30; chunks=4; out=${out:-run/experiments/block-expansion}
else
  steps=100; base_steps=600; chunks=24; out=${out:-docs/experiments}
fi
work=run/experiments/block-expansion-work$([ "$quick" = 1 ] && echo -quick || true)
bin=./build/longctx
[ -x "$bin" ] || { echo "run.sh: error: $bin is missing; build first" >&2; exit 1; }
[ -f data/kjv.txt ] || bash scripts/corpus.sh
[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] || bash scripts/fetch_model.sh
mkdir -p "$work" "$out"
start=$(date +%s)
log="$work/commands.txt"; : > "$log"
run() { echo "$*" >> "$log"; "$@"; }

# The new domain: C headers in path order, 3 MB; held-out parts of both domains by the
# trainer's own rule (every 20th 16 KiB block).
if [ ! -s "$work/c.txt" ]; then
  # (head closes the pipe early: its writers' SIGPIPE is expected)
  { find /usr/include -name '*.h' -type f | LC_ALL=C sort | while read -r f; do cat "$f"; done | head -c 3000000 > "$work/c.txt"; } || true
  [ "$(wc -c < "$work/c.txt")" -eq 3000000 ] || { echo "run.sh: error: could not gather 3 MB of C headers" >&2; exit 1; }
fi
python3 - "$work" <<'PY'
import sys
w = sys.argv[1]
for name, src in (("c", w + "/c.txt"), ("kjv", "data/kjv.txt")):
    data = open(src, "rb").read()
    val = b"".join(data[i:i + 16384] for i in range(0, len(data), 16384) if (i // 16384) % 20 == 19)
    open(f"{w}/{name}-val.txt", "wb").write(val[:400000])
PY
ppl() {  # model, file, extra... -> JSON on stdout
  local m=$1 f=$2; shift 2
  run $bin perplexity -m "$m" -f "$f" --ctx 256 --chunks "$chunks" -t 2 --json "$@"
}
results="$work/results.jsonl"; : > "$results"
record() {  # model-name method trainable-params seconds model-file extra...
  local name=$1 method=$2 params=$3 secs=$4 file=$5; shift 5
  local c k
  c=$(ppl "$file" "$work/c-val.txt" "$@"); k=$(ppl "$file" "$work/kjv-val.txt" "$@")
  python3 -c 'import json,sys; c=json.loads(sys.argv[5]); k=json.loads(sys.argv[6]); print(json.dumps({"model": sys.argv[1], "method": sys.argv[2], "trainable": int(sys.argv[3]), "seconds": float(sys.argv[4]), "c_loss": c["loss"], "kjv_loss": k["loss"]}))' \
    "$name" "$method" "$params" "$secs" "$c" "$k" >> "$results"
  tail -1 "$results"
}
tune() {  # model-name method init out lr extra...: trains on C, records
  local name=$1 method=$2 init=$3 o=$4 lr=$5; shift 5
  local t0 t1 js params
  t0=$(date +%s)
  js=$(run $bin train --data "$work/c.txt" --init "$init" --steps "$steps" --ctx 256 --batch 4 --lr "$lr" \
        --min-lr "$(python3 -c "print($lr/10)")" --warmup $((steps / 10 + 1)) --eval-every 0 --eval-batches 2 \
        --save-every 0 -t 2 --json -o "$o" "$@")
  t1=$(date +%s)
  params=$(echo "$js" | python3 -c 'import json,sys; print(next(json.loads(l)["params"] for l in sys.stdin if "\"trainable\"" in l))')
  if [ "$method" = lora ]; then
    record "$name" "$method" "$params" $((t1 - t0)) "$init" --lora "$o"
  else
    record "$name" "$method" "$params" $((t1 - t0)) "$o"
  fi
}

# --- SmolLM2-135M (30 layers): +3 layers (one after every 10) = 10.6M parameters; the last 3
# layers = 10.6M; LoRA rank 35 on all 7 matrices = 10.7M.
sm=models/SmolLM2-135M-Instruct.Q4_1.gguf
record smollm2 base 0 0 "$sm"
run $bin expand -m "$sm" -o "$work/sm-expanded.gguf" --every 10 > /dev/null
tune smollm2 expansion "$work/sm-expanded.gguf" "$work/sm-expansion.gguf" 2e-4 --train-only new
tune smollm2 last-layers "$sm" "$work/sm-last.gguf" 2e-4 --train-only blocks=27-29
tune smollm2 lora "$sm" "$work/sm-lora.gguf" 1e-3 --lora r=35,alpha=70,targets=q,k,v,o,gate,up,down
tune smollm2 full "$sm" "$work/sm-full.gguf" 1e-4

# --- Our own: 4 layers (tiny preset) trained on the KJV; +2 layers (one after every 2) =
# 2.1M; the last 2 layers = 2.1M; LoRA rank 88 on all matrices = 2.1M.
run $bin train --preset tiny --data data/kjv.txt --steps "$base_steps" --ctx 256 --batch 8 --eval-every 0 \
  --eval-batches 2 --save-every 0 -t 2 --json -o "$work/kjv.gguf" > /dev/null
record kjv-tiny base 0 0 "$work/kjv.gguf"
run $bin expand -m "$work/kjv.gguf" -o "$work/kjv-expanded.gguf" --every 2 > /dev/null
tune kjv-tiny expansion "$work/kjv-expanded.gguf" "$work/kjv-expansion.gguf" 1e-3 --train-only new
tune kjv-tiny last-layers "$work/kjv.gguf" "$work/kjv-last.gguf" 1e-3 --train-only blocks=2-3
tune kjv-tiny lora "$work/kjv.gguf" "$work/kjv-lora.gguf" 2e-3 --lora r=88,alpha=176,targets=q,k,v,o,gate,up,down
tune kjv-tiny full "$work/kjv.gguf" "$work/kjv-full.gguf" 1e-3

/usr/bin/python3 experiments/block-expansion/report.py "$results" --out "$out" --steps "$steps" \
  --seconds $(( $(date +%s) - start )) --commands "$log" $([ "$quick" = 1 ] && echo --quick || true)
