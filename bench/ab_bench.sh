#!/usr/bin/env bash
# Two longctx binaries on the same tests, same machine, runs alternating (A B A B ...) so that a
# drift of the machine's speed hits both: the check that a change which should not move speed
# (a refactor) did not. Tests: `bench -m` pp512 / tg128 on SmolLM2-135M-Instruct Q4_1 and Q8_0,
# `bench train --preset small` (batch 8, ctx 256), `bench attention` tiled-causal at 8K
# (forward and forward + backward). Prints the median tokens/s (attention: seconds) of each
# binary over the rounds and new / old.
#
#   bash bench/ab_bench.sh OLD_LONGCTX NEW_LONGCTX [-r ROUNDS] [-t THREADS]
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2
shift 2
rounds=3 threads=2
while getopts "r:t:" o; do
  case $o in r) rounds=$OPTARG ;; t) threads=$OPTARG ;; *) exit 2 ;; esac
done
bash scripts/fetch_model.sh > /dev/null
q41=models/SmolLM2-135M-Instruct.Q4_1.gguf q80=models/SmolLM2-135M-Instruct.Q8_0.gguf
[ -f "$q80" ] || "$new" quantize "$q41" "$q80" q8_0 > /dev/null 2>&1
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  for side in old new; do
    bin=${!side}
    for m in "$q41" "$q80"; do
      "$bin" bench -m "$m" -p 512 -n 128 -r 3 -t "$threads" --json > "$out/$side.$r.$(basename "$m" .gguf).json"
    done
    "$bin" bench train --preset small --batch 8 --ctx 256 -t "$threads" --json 2> /dev/null | tail -1 > "$out/$side.$r.train.json"
    "$bin" bench attention --seq-len 8192 --impl tiled-causal --passes fwd,fwd+bwd -t "$threads" --json 2> /dev/null |
      sed -n '/^{/,$p' > "$out/$side.$r.attention.json"
    echo "round $r/$rounds: $side done" >&2
  done
done
python3 - "$out" "$rounds" "$threads" "$old" "$new" <<'PY'
import json, os, statistics, sys
out, rounds, threads, old, new = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
def load(side, r, name):
    return json.load(open(os.path.join(out, f"{side}.{r}.{name}.json")))
rows = {}  # test -> side -> [values]
for side in ("old", "new"):
    for r in range(1, rounds + 1):
        for m in ("SmolLM2-135M-Instruct.Q4_1", "SmolLM2-135M-Instruct.Q8_0"):
            for t in load(side, r, m)["results"]:
                rows.setdefault((f"{m.split('.')[-1]} {t['test']}", "t/s"), {}).setdefault(side, []).append(t["tokens_per_s"])
        rows.setdefault(("train small b8 ctx256", "t/s"), {}).setdefault(side, []).append(load(side, r, "train")["tokens_per_s"])
        for t in load(side, r, "attention")["results"]:
            rows.setdefault((f"attention 8K {t['pass']}", "s"), {}).setdefault(side, []).append(t["seconds"])
print(f"| test | old | new | new / old |")
print("|---|---|---|---|")
for (test, unit), v in rows.items():
    a, b = statistics.median(v["old"]), statistics.median(v["new"])
    ratio = b / a if unit == "t/s" else a / b  # > 1: new is faster
    print(f"| {test} | {a:.4g} {unit} ({min(v['old']):.4g}-{max(v['old']):.4g}) | {b:.4g} {unit} ({min(v['new']):.4g}-{max(v['new']):.4g}) | {ratio:.3f}x |")
print(f"\nmedians of {rounds} alternating rounds (range in brackets), {threads} threads; speed ratio (> 1: new faster); {os.uname().nodename}")
print(f"old: {old}\nnew: {new}")
PY
