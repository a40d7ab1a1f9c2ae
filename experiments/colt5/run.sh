#!/usr/bin/env bash
# CoLT5 against a dense model and a sliding-window model of the same depth and model_dim on the
# KJV corpus, at sequence lengths 2K, 4K and 8K (docs/experiments/colt5.md):
#   - training step time (bench train, one sequence per step);
#   - held-out loss after the same wall time of training: each model gets as many steps as its
#     measured step time allows in the budget, with its cosine schedule over those steps;
#   - prefill and decode tokens/s and KV bytes of the trained checkpoint (bench -m).
# Variants: dense (causal), window (window:256), colt5 (CoLT5's routed feed-forward and routed
# attention in every layer), colt5-ffn (the routed feed-forward alone; with --ffn-only-too).
# Full run: about 50 minutes on 2 cores (4 minutes of training per model and length).
# --quick: one short length and a few seconds per model (a smoke test of the harness).
# Usage: experiments/colt5/run.sh [--quick] [--out DIR] [--lengths 2048,4096,8192] [--budget SECONDS] [--ffn-only-too]
set -euo pipefail
cd "$(dirname "$0")/../.."
quick=0
out=""
lengths=""
budget=""
ffn_too=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --out) out="$2"; shift ;;
    --lengths) lengths="$2"; shift ;;
    --budget) budget="$2"; shift ;;
    --ffn-only-too) ffn_too=1 ;;
    *) echo "run.sh: error: unknown argument '$1' (expected --quick, --out DIR, --lengths L,L, --budget S or --ffn-only-too)" >&2; exit 1 ;;
  esac
  shift
done
if [ "$quick" = 1 ]; then
  lengths=${lengths:-512}; budget=${budget:-8}; eval_batches=2; out=${out:-run/experiments/colt5}
else
  lengths=${lengths:-2048,4096,8192}; budget=${budget:-240}; eval_batches=16; out=${out:-docs/experiments}
fi
work=run/experiments/colt5-work$([ "$quick" = 1 ] && echo -quick || true)
bin=./build/longctx
[ -x "$bin" ] || { echo "run.sh: error: $bin is missing; build first (cmake --build build)" >&2; exit 1; }
[ -f data/kjv.txt ] || bash scripts/corpus.sh
mkdir -p "$work" "$out"
start=$(date +%s)
log="$work/commands.txt"
: > "$log"
run() { echo "$*" >> "$log"; "$@"; }
results="$work/results.jsonl"
: > "$results"

run $bin tokenizer train --data data/kjv.txt --vocab-size 4096 -o "$work/tok.gguf" > /dev/null
variants="dense window colt5"
[ "$ffn_too" = 1 ] && variants="$variants colt5-ffn"
variant_flags() {
  case "$1" in
    dense) ;;
    window) echo "--attn window:256" ;;
    colt5-ffn) echo "--colt5 ffn=light:128,heavy:1024,route:1/16" ;;
    colt5) echo "--colt5 ffn=light:128,heavy:1024,route:1/16;attn=window:128,light_heads:1,route_q:1/16,route_kv:1/8" ;;
  esac
}
for L in ${lengths//,/ }; do
  for v in $variants; do
    flags=$(variant_flags "$v")
    # shellcheck disable=SC2086
    bench=$(run $bin bench train --preset tiny --batch 1 --ctx "$L" --steps 2 --warmup 1 --json $flags | tail -1)
    step_ms=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['step_ms'])" "$bench")
    steps=$(python3 -c "import sys; print(max(5, int(float(sys.argv[1]) * 1000 / float(sys.argv[2]))))" "$budget" "$step_ms")
    warmup=$(( steps / 10 < 50 ? steps / 10 : 50 ))
    ckpt="$work/$v-$L.gguf"
    echo "colt5 experiment: $v at $L: $steps steps (${step_ms} ms each in bench train)" >&2
    # shellcheck disable=SC2086
    train=$(run $bin train --preset tiny --data data/kjv.txt --tokenizer "$work/tok.gguf" --ctx "$L" --batch 1 \
      --steps "$steps" --warmup "$warmup" --seed 1 --eval-every 0 --eval-batches "$eval_batches" --json $flags \
      -o "$ckpt" | tail -1)
    prefill=$(run $bin bench -m "$ckpt" -p "$L" -n 0 -r 3 --json | tail -1)
    decode=$(run $bin bench -m "$ckpt" -p 0 -n 32 -d "$((L - 64))" -r 1 --json | tail -1)
    python3 - "$v" "$L" "$bench" "$train" "$prefill" "$decode" "$steps" >> "$results" <<'PY'
import json, sys
v, L = sys.argv[1], int(sys.argv[2])
bench, train, prefill, decode = map(json.loads, sys.argv[3:7])
steps = int(sys.argv[7])
res = {r["test"]: r for r in prefill["results"] + decode["results"]}
print(json.dumps({
    "variant": v, "length": L, "steps": steps,
    "bench_step_ms": bench["step_ms"], "bench_tokens_per_s": bench["tokens_per_s"],
    "train_tokens_per_s": train["tokens_per_s"], "train_seconds": train["elapsed_s"],
    "val_loss": train["val_loss"], "val_bpb": train["val_bpb"], "routed": train.get("routed"),
    "prefill_tokens_per_s": res["pp%d" % L]["tokens_per_s"],
    "decode_tokens_per_s": res["tg32 @ d%d" % (L - 64)]["tokens_per_s"],
    "kv_bytes": res["pp%d" % L]["kv_bytes"],
}))
PY
  done
done
/usr/bin/python3 experiments/colt5/report.py "$results" "$out" "$(( $(date +%s) - start ))" "$log"
