#!/usr/bin/env bash
# Long-context inference, longctx against llama.cpp on the same GGUF file and threads, in one
# run (issue: long-context inference): the prefill of a P-token prompt into an empty cache
# (pp8192 by default) and decoding at each cache depth (tg32 @ d8192, d16384, d32768 by default),
# with each engine's peak resident memory. SmolLM2-135M-Instruct in Q8_0 (made from the shipped
# Q4_1 with `longctx quantize`). Both engines use the same KV cache type (-c, default f16:
# llama.cpp's default); llama.cpp (pip's llama-cpp-python) runs with flash attention on and off
# and the faster counts (a q8_0 V cache needs flash attention there: the other setting fails and
# is skipped). Depths past 8192 run past SmolLM2's trained context: speed and memory, not
# quality.
#
# Then (-s, default on) longctx alone on random-weight models of SmolLM2's shape (30 layers,
# model_dim 576, 9 heads of 64, ff 1536, vocab 49152, Q8_0): kv_heads 9 (MHA), 3 (GQA) and 1
# (MQA) decoding at depth -D (16384), and GQA with a 4096-token window on every layer at depths
# 4096 and -W (32768): KV bytes and tg at each. Decode speed on these VMs moves by up to ~25%
# from one process to the next (the same command gave 58 to 78 t/s), more than the 15% the
# window comparison asks about, so the two window depths run in separate processes, alternating,
# -w rounds (3) of -r reps each, and the table gives each depth's median round with the range.
# For the same reason -a N runs the engine comparison N times over (longctx, llama.cpp fa on,
# fa off, again), each a new process, and reports the median round of each engine with the range.
#
#   bash bench/long_bench.sh [-t 2] [-p 8192] [-n 32] [-d 8192,16384,32768] [-r 1] [-c f16|f32|q8_0]
#                            [-s 0|1] [-l 0|1] [-D 16384] [-W 32768] [-w 3] [-a 1]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 prompt=8192 gen=32 depths=8192,16384,32768 reps=1 cache=f16 shapes=1 llama=1 shape_depth=16384 window_depth=32768 rounds=3 pair_rounds=1
while getopts "t:p:n:d:r:c:s:l:D:W:w:a:" o; do
  case $o in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; d) depths=$OPTARG ;; r) reps=$OPTARG ;;
             c) cache=$OPTARG ;; s) shapes=$OPTARG ;; l) llama=$OPTARG ;; D) shape_depth=$OPTARG ;;
             W) window_depth=$OPTARG ;; w) rounds=$OPTARG ;; a) pair_rounds=$OPTARG ;;
             *) exit 2 ;; esac
done
bash scripts/fetch_model.sh > /dev/null
bash scripts/setup_llamacpp.sh > /dev/null
cmake --build build --target longctx > /dev/null
q41=models/SmolLM2-135M-Instruct.Q4_1.gguf m=models/SmolLM2-135M-Instruct.Q8_0.gguf
[ -f "$m" ] || ./build/longctx quantize "$q41" "$m" q8_0 > /dev/null 2>&1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run_pair() {  # NAME, then the flags both take: -p P -n N [-d D]
  local name=$1; shift
  local ctx=$(( $(echo "$@" | sed -n 's/.*-d \([0-9]*\).*/\1/p' | grep . || echo 0) + prompt + gen + 64 ))
  for round in $(seq 1 "$pair_rounds"); do
    ./build/longctx bench -m "$m" "$@" -r "$reps" -t "$threads" --ctx "$ctx" --cache-type-k "$cache" \
      --cache-type-v "$cache" --json > "$out/$name.$round.longctx.json"
    for fa in on off; do
      python3 bench/llamacpp_model.py -m "$m" "$@" -r "$reps" -t "$threads" --fa "$fa" --cache-type "$cache" \
        > "$out/$name.$round.llamacpp-$fa.json" 2> /dev/null ||
        echo '{"tests": [], "peak_rss_bytes": 0}' > "$out/$name.$round.llamacpp-$fa.json"
    done
  done
}
if [ "$llama" = 1 ]; then
[ "$prompt" -gt 0 ] && run_pair "pp" -p "$prompt" -n 0
for d in ${depths//,/ }; do run_pair "d$d" -p 0 -n "$gen" -d "$d"; done
python3 - "$out" "$threads" "$cache" "$pair_rounds" <<'PY'
import glob, json, os, statistics, sys
out, threads, cache, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
print("| test | longctx t/s | peak RSS MiB | llama.cpp t/s (best of fa on/off) | peak RSS MiB | ratio |")
print("|---|---|---|---|---|---|")
def median_of(runs):  # runs: [(tokens/s, rss)] over rounds -> "median (a to b)", max rss, median
    tps = sorted(t for t, _ in runs)
    med = statistics.median(tps)
    text = f"{med:.1f}" if len(tps) == 1 else f"{med:.1f} (median of {len(tps)}: {tps[0]:.1f} to {tps[-1]:.1f})"
    return text, max(r for _, r in runs), med
names = sorted({os.path.basename(f).split(".")[0] for f in glob.glob(os.path.join(out, "*.1.longctx.json"))},
               key=lambda n: (len(n), n))
for name in names:
    ours, theirs = {}, {}  # test -> [(t/s, rss)]; theirs: fa -> test -> [(t/s, rss)]
    for rnd in range(1, rounds + 1):
        for r in json.load(open(os.path.join(out, f"{name}.{rnd}.longctx.json")))["results"]:
            ours.setdefault(r["test"], []).append((r["tokens_per_s"], r["peak_rss_bytes"]))
        for fa in ("on", "off"):
            j = json.load(open(os.path.join(out, f"{name}.{rnd}.llamacpp-{fa}.json")))
            for r in j["tests"]:
                theirs.setdefault(fa, {}).setdefault(r["test"], []).append((r["tokens_per_s"], j["peak_rss_bytes"]))
    for test, runs in ours.items():
        o_text, o_rss, o_med = median_of(runs)
        best = None
        for fa, tests in theirs.items():
            if test in tests:
                t = median_of(tests[test])
                if best is None or t[2] > best[1][2]:
                    best = (fa, t)
        if best is None:
            print(f"| {test} | {o_text} | {o_rss / 2**20:.0f} | (failed) | | |")
            continue
        fa, (t_text, t_rss, t_med) = best
        print(f"| {test} | {o_text} | {o_rss / 2**20:.0f} | {t_text} (fa {fa}) | {t_rss / 2**20:.0f} | {o_med / t_med:.2f}x |")
print(f"\n{threads} threads; SmolLM2-135M-Instruct Q8_0; KV cache {cache} in both; {os.uname().nodename}")
PY
fi
if [ "$shapes" = 1 ]; then
  shape=layers=30,model_dim=576,heads=9,ff_dim=1536,vocab=49152,type=q8_0
  echo
  echo "| model | KV heads | test | t/s | KV cache MiB | peak RSS MiB |"
  echo "|---|---|---|---|---|---|"
  run_shape() {  # LABEL KV_HEADS DEPTHS [,window=W]
    ./build/longctx bench --random-model "llama:$shape,kv_heads=$2$4" -p 0 -n "$gen" -d "$3" -r "$reps" \
      -t "$threads" --ctx $(( ${3##*,} + gen + 64 )) --cache-type-k "$cache" --cache-type-v "$cache" --json \
      > "$out/shape.json"
    python3 - "$out/shape.json" "$1" "$2" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    print(f"| {sys.argv[2]} | {sys.argv[3]} | {r['test']} | {r['tokens_per_s']:.1f} | {r['kv_bytes'] / 2**20:.1f} "
          f"| {r['peak_rss_bytes'] / 2**20:.0f} |")
PY
  }
  run_shape MHA 9 "$shape_depth" ""
  run_shape GQA 3 "$shape_depth" ""
  run_shape MQA 1 "$shape_depth" ""
  # The window model: each depth in its own process, the order alternating between rounds.
  win="llama:$shape,kv_heads=3,window=4096"
  for round in $(seq 1 "$rounds"); do
    order="4096 $window_depth"
    [ $(( round % 2 )) = 0 ] && order="$window_depth 4096"
    for d in $order; do
      ./build/longctx bench --random-model "$win" -p 0 -n "$gen" -d "$d" -r "$reps" -t "$threads" \
        --ctx $(( window_depth + gen + 64 )) --cache-type-k "$cache" --cache-type-v "$cache" --json \
        > "$out/window_${d}_$round.json"
    done
  done
  python3 - "$out" 4096 "$window_depth" <<'PY'
import glob, json, statistics, sys
out, d_lo, d_hi = sys.argv[1], sys.argv[2], sys.argv[3]
med = {}
for d in (d_lo, d_hi):
    runs = [json.load(open(f))["results"][0] for f in sorted(glob.glob(f"{out}/window_{d}_*.json"))]
    tps = sorted(r["tokens_per_s"] for r in runs)
    med[d] = statistics.median(tps)
    r = runs[0]
    print(f"| GQA, window 4096 | 3 | {r['test']} | {med[d]:.1f} (median of {len(tps)}: {tps[0]:.1f} to {tps[-1]:.1f}) "
          f"| {r['kv_bytes'] / 2**20:.1f} | {max(x['peak_rss_bytes'] for x in runs) / 2**20:.0f} |")
print(f"\nwindow model, tg at depth {d_hi} / at depth {d_lo}: {med[d_hi] / med[d_lo]:.3f}")
PY
  echo
  echo "$threads threads; random weights of SmolLM2-135M's shape in Q8_0; KV cache $cache; $(uname -n)"
fi