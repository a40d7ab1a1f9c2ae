#!/usr/bin/env bash
# longctx against llama.cpp on the same GGUF files, same threads, in one run: pp (prefill of N
# random tokens) and tg (N tokens decoded one at a time), llama-bench style, for SmolLM2-135M-
# Instruct in Q4_1 (as shipped) and Q8_0 (made from it with `longctx quantize`). llama.cpp is pip's
# llama-cpp-python (scripts/setup_llamacpp.sh), run with flash attention on and off; the faster
# of the two counts for each test. Prints a Markdown table with the ratios (docs/BENCHMARKS.md).
#
#   bash bench/model_bench.sh [-t 2] [-p 512] [-n 128] [-r 5]
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 prompt=512 gen=128 reps=5
while getopts "t:p:n:r:" o; do
  case $o in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; r) reps=$OPTARG ;; *) exit 2 ;; esac
done
bash scripts/fetch_model.sh > /dev/null
bash scripts/setup_llamacpp.sh > /dev/null
cmake --build build --target longctx > /dev/null
q41=models/SmolLM2-135M-Instruct.Q4_1.gguf q80=models/SmolLM2-135M-Instruct.Q8_0.gguf
[ -f "$q80" ] || ./build/longctx quantize "$q41" "$q80" q8_0 > /dev/null 2>&1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for m in "$q41" "$q80"; do
  name=$(basename "$m" .gguf)
  ./build/longctx bench -m "$m" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" --json > "$out/$name.longctx.json"
  for fa in on off; do
    python3 bench/llamacpp_model.py -m "$m" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" --fa "$fa" \
      > "$out/$name.llamacpp-$fa.json" 2> /dev/null
  done
done
python3 - "$out" "$threads" <<'PY'
import glob, json, os, sys
out, threads = sys.argv[1], sys.argv[2]
print(f"| model | test | longctx t/s | llama.cpp t/s (best of fa on/off) | ratio |")
print("|---|---|---|---|---|")
for f in sorted(glob.glob(os.path.join(out, "*.longctx.json"))):
    name = os.path.basename(f)[: -len(".longctx.json")]
    ours = {r["test"]: r for r in json.load(open(f))["results"]}
    theirs = {}
    for fa in ("on", "off"):
        for r in json.load(open(os.path.join(out, f"{name}.llamacpp-{fa}.json")))["tests"]:
            if r["test"] not in theirs or r["tokens_per_s"] > theirs[r["test"]][0]["tokens_per_s"]:
                theirs[r["test"]] = (r, fa)
    for test, r in ours.items():
        t, fa = theirs[test]
        print(f"| {name} | {test} | {r['tokens_per_s']:.1f} ± {r['sd']:.1f} | {t['tokens_per_s']:.1f} ± {t['sd']:.1f} "
              f"(fa {fa}) | {r['tokens_per_s'] / t['tokens_per_s']:.2f}x |")
print(f"\n{threads} threads; {os.uname().nodename}")
PY
