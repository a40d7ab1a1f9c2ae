#!/usr/bin/env bash
# longctx against llama.cpp on the same GGUF files, same threads, in one run: pp (prefill of N
# random tokens) and tg (N tokens decoded one at a time) for SmolLM2-135M-Instruct in Q4_1 (as
# shipped) and Q8_0 (made from it with `longctx quantize`).
#
# The reference is llama.cpp's own tool, llama-bench, built natively from the llama.cpp sources
# that pip's llama-cpp-python vendors (bench/setup_llamabench.sh), with flash attention off and on
# (the faster counts for each test) and its defaults otherwise (weights repacked, --poll 50).
# Beside it runs our Python harness over the same library (bench/llamacpp_model.py, the one
# the long-context and serving benchmarks use), so any gap between the two shows in the table.
# `longctx bench memory` measures the memory bandwidth in the same run (before and after, the
# best counts), and each tg row gives the share of the bandwidth bound longctx reaches: every
# weight byte read once per token, at the triad bandwidth (STREAM's count) and at the read
# bandwidth. Prints a Markdown table (docs/BENCHMARKS.md).
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
llama_bench=$(bash bench/setup_llamabench.sh)
cmake --build build --target longctx > /dev/null
q41=models/SmolLM2-135M-Instruct.Q4_1.gguf q80=models/SmolLM2-135M-Instruct.Q8_0.gguf
[ -f "$q80" ] || ./build/longctx quantize "$q41" "$q80" q8_0 > /dev/null 2>&1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
./build/longctx bench memory -t "$threads" --json > "$out/memory-before.json"
for m in "$q41" "$q80"; do
  name=$(basename "$m" .gguf)
  ./build/longctx bench -m "$m" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" --json > "$out/$name.longctx.json"
  "$llama_bench" -m "$m" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" -fa 0,1 -o json \
    > "$out/$name.llamabench.json" 2> /dev/null
  for fa in on off; do
    python3 bench/llamacpp_model.py -m "$m" -p "$prompt" -n "$gen" -r "$reps" -t "$threads" --fa "$fa" \
      > "$out/$name.harness-$fa.json" 2> /dev/null
  done
done
./build/longctx bench memory -t "$threads" --json > "$out/memory-after.json"
python3 - "$out" "$threads" <<'PY'
import glob, json, os, sys
out, threads = sys.argv[1], sys.argv[2]
mem = [json.load(open(os.path.join(out, f"memory-{w}.json"))) for w in ("before", "after")]
triad = max(m["triad_gbps"] for m in mem)
read = max(m["read_gbps"] for m in mem)
print("| model | test | longctx t/s | llama-bench t/s (best of fa 0/1) | ratio | our harness t/s (best of fa) | harness / llama-bench |")
print("|---|---|---|---|---|---|---|")
bounds = []
for f in sorted(glob.glob(os.path.join(out, "*.longctx.json"))):
    name = os.path.basename(f)[: -len(".longctx.json")]
    lc = json.load(open(f))
    ours = {r["test"]: r for r in lc["results"]}
    lb = {}
    for r in json.load(open(os.path.join(out, f"{name}.llamabench.json"))):
        test = f"pp{r['n_prompt']}" if r["n_gen"] == 0 else f"tg{r['n_gen']}"
        if test not in lb or r["avg_ts"] > lb[test]["avg_ts"]:
            lb[test] = r
    hs = {}
    for fa in ("on", "off"):
        for r in json.load(open(os.path.join(out, f"{name}.harness-{fa}.json")))["tests"]:
            if r["test"] not in hs or r["tokens_per_s"] > hs[r["test"]][0]["tokens_per_s"]:
                hs[r["test"]] = (r, fa)
    for test, r in ours.items():
        b, (h, hfa) = lb[test], hs[test]
        print(f"| {name} | {test} | {r['tokens_per_s']:.1f} ± {r['sd']:.1f} | {b['avg_ts']:.1f} ± {b['stddev_ts']:.1f} "
              f"(fa {b['flash_attn']}) | {r['tokens_per_s'] / b['avg_ts']:.2f}x | {h['tokens_per_s']:.1f} ± {h['sd']:.1f} "
              f"(fa {hfa}) | {h['tokens_per_s'] / b['avg_ts']:.2f} |")
        if test.startswith("tg"):
            mib = lc["weight_bytes"] / 2**20
            bound_t, bound_r = triad * 1e9 / lc["weight_bytes"], read * 1e9 / lc["weight_bytes"]
            bounds.append(f"| {name} | {test} | {mib:.1f} | {bound_t:.0f} | {bound_r:.0f} | "
                          f"{r['tokens_per_s'] / bound_t:.0%} | {r['tokens_per_s'] / bound_r:.0%} | "
                          f"{b['avg_ts'] / bound_r:.0%} |")
print(f"\nMemory bandwidth ({threads} threads, best of before and after): triad {triad:.1f} GB/s (STREAM's count), "
      f"read {read:.1f} GB/s\n")
print("| model | test | weight MiB per token | bound at triad t/s | bound at read t/s | longctx / triad bound "
      "| longctx / read bound | llama-bench / read bound |")
print("|---|---|---|---|---|---|---|---|")
print("\n".join(bounds))
print(f"\n{threads} threads; {os.uname().nodename}")
PY
