#!/usr/bin/env bash
# train --json: each eval record's tokens_per_s is the training rate since the previous record
# (tokens trained then / training seconds then). The summary's tokens_per_s is every token over
# all the training seconds, so the records' seconds (tokens_i / rate_i) must add up to the
# summary's (tokens / rate), with a short last interval (25 steps, eval every 10) and --accum.
# Then eval --json on the checkpoint: one JSON object on stdout, ending in a newline. Then a CoLT5
# run (--colt5): every record reports each layer's routed fraction, within [0, 1], and the
# checkpoint generates text.
# Usage: train_json_test.sh path/to/longctx
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 5000); do echo "In the beginning was the Word, and the Word was with God. Line $i."; done > "$work/big.txt"
"$bin" train --preset tiny --layers 1 --vocab-size 300 --data "$work/big.txt" --ctx 16 --batch 2 --accum 2 \
  --steps 25 --eval-every 10 --eval-batches 1 -t 2 -o "$work/m.gguf" --json > "$work/log.jsonl"
python3 - "$work/log.jsonl" <<'PY'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
evals = [j for j in lines if j["event"] == "eval"]
summary = lines[-1]
assert summary["event"] == "summary", summary
assert [e["step"] for e in evals] == [10, 20, 25], evals
tokens_per_step = 2 * 16 * 2
seconds, prev = 0.0, 0
for e in evals:
    assert e["tokens_per_s"] > 0, e
    seconds += (e["step"] - prev) * tokens_per_step / e["tokens_per_s"]
    prev = e["step"]
total = 25 * tokens_per_step / summary["tokens_per_s"]
assert abs(seconds - total) <= 1e-9 * total, (seconds, total, evals, summary)
print(f"ok: eval rates {[round(e['tokens_per_s']) for e in evals]} add up to the summary's "
      f"{summary['tokens_per_s']:.0f} tokens/s ({seconds:.4f} s of training)")
PY
"$bin" eval -m "$work/m.gguf" --data "$work/big.txt" --lengths 8,16 --max-tokens 64 -t 2 --json > "$work/eval.json" 2> /dev/null
python3 - "$work/eval.json" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read()
assert raw.endswith(b"\n") and raw.count(b"\n") == 1, raw[-40:]
j = json.loads(raw)
assert [r["length"] for r in j["results"]] == [8, 16], j
print("ok: eval --json is one object ending in a newline")
PY
"$bin" train --preset tiny --layers 2 --vocab-size 300 --data "$work/big.txt" --ctx 32 --batch 2 --steps 6 \
  --eval-every 3 --eval-batches 1 -t 2 --colt5 "ffn=light:32,heavy:256,route:1/4;attn=window:8,light_heads:1,route_q:1/4,route_kv:1/2" -o "$work/c.gguf" --json > "$work/colt5.jsonl"
python3 - "$work/colt5.jsonl" <<'PY'
import json, sys
lines = [j for j in map(json.loads, open(sys.argv[1])) if j["event"] in ("eval", "summary")]
assert [j["event"] for j in lines] == ["eval", "eval", "summary"], lines
for j in lines:
    r = j["routed"]
    assert sorted((x["layer"], x["router"]) for x in r) == [
        (l, k) for l in (0, 1) for k in ("attn_kv", "attn_q", "ffn")], r
    assert all(0 <= x["fraction"] <= 1 for x in r), r
print("ok: --colt5 records report the routed fraction per layer:", lines[-1]["routed"])
PY
"$bin" generate -m "$work/c.gguf" -p "In the beginning" -n 8 -t 2 > /dev/null 2>&1
echo "ok: the CoLT5 checkpoint generates"
"$bin" bench routing -m "$work/c.gguf" --data "$work/big.txt" --tokens 32 -t 2 --json > "$work/routing.json"
python3 - "$work/routing.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
assert sorted((l["layer"], l["router"]) for l in j["layers"]) == [
    (l, k) for l in (0, 1) for k in ("attn_kv", "attn_q", "ffn")], j
assert all(l["tokens"] == 32 and 0 <= l["agree"] <= 32 for l in j["layers"]), j
# The causal rule routes the same tokens both ways (only a score within rounding of the
# threshold could differ).
assert j["agreement"] >= 0.95, j
print("ok: bench routing: full forward and decoding agree on", j["agreement"])
PY
