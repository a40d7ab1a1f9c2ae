#!/usr/bin/env bash
# Long-context inference, longctx against llama.cpp on the same GGUF file and threads, in one
# run (issue: long-context inference): the prefill of a P-token prompt into an empty cache
# (pp8192 by default) and decoding at each cache depth (tg32 @ d8192, d16384, d32768 by default),
# with each engine's peak resident memory. SmolLM2-135M-Instruct in Q8_0 (made from the shipped
# Q4_1 with `longctx quantize`). Both engines use the same KV cache type (-c, default f16:
# llama.cpp's default); llama.cpp (pip's llama-cpp-python) runs with flash attention on and off
# and the faster counts. Depths past 8192 run past SmolLM2's trained context: speed and memory,
# not quality.
#
#   bash bench/long_bench.sh [-t 2] [-p 8192] [-n 32] [-d 8192,16384,32768] [-r 1] [-c f16|f32]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 prompt=8192 gen=32 depths=8192,16384,32768 reps=1 cache=f16
while getopts "t:p:n:d:r:c:" o; do
  case $o in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; d) depths=$OPTARG ;; r) reps=$OPTARG ;;
             c) cache=$OPTARG ;; *) exit 2 ;; esac
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
  ./build/longctx bench -m "$m" "$@" -r "$reps" -t "$threads" --ctx "$ctx" --cache-type-k "$cache" \
    --cache-type-v "$cache" --json > "$out/$name.longctx.json"
  for fa in on off; do
    python3 bench/llamacpp_model.py -m "$m" "$@" -r "$reps" -t "$threads" --fa "$fa" --cache-type "$cache" \
      > "$out/$name.llamacpp-$fa.json" 2> /dev/null
  done
}
[ "$prompt" -gt 0 ] && run_pair "pp" -p "$prompt" -n 0
for d in ${depths//,/ }; do run_pair "d$d" -p 0 -n "$gen" -d "$d"; done
python3 - "$out" "$threads" "$cache" <<'PY'
import glob, json, os, sys
out, threads, cache = sys.argv[1], sys.argv[2], sys.argv[3]
print("| test | longctx t/s | peak RSS MiB | llama.cpp t/s (best of fa on/off) | peak RSS MiB | ratio |")
print("|---|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "*.longctx.json")), key=lambda p: (len(p), p)):
    name = os.path.basename(f)[: -len(".longctx.json")]
    ours = {r["test"]: r for r in json.load(open(f))["results"]}
    theirs = {}
    for fa in ("on", "off"):
        j = json.load(open(os.path.join(out, f"{name}.llamacpp-{fa}.json")))
        for r in j["tests"]:
            if r["test"] not in theirs or r["tokens_per_s"] > theirs[r["test"]][0]["tokens_per_s"]:
                theirs[r["test"]] = (r, fa, j["peak_rss_bytes"])
    for test, r in ours.items():
        t, fa, rss = theirs[test]
        print(f"| {test} | {r['tokens_per_s']:.1f} | {r['peak_rss_bytes'] / 2**20:.0f} | {t['tokens_per_s']:.1f} "
              f"(fa {fa}) | {rss / 2**20:.0f} | {r['tokens_per_s'] / t['tokens_per_s']:.2f}x |")
print(f"\n{threads} threads; SmolLM2-135M-Instruct Q8_0; KV cache {cache} in both; {os.uname().nodename}")
PY
