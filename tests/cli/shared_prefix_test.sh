#!/usr/bin/env bash
# generate with several prompts (-p again, and --prompt-file): the prefix they share is computed
# once (shared_prefix_tokens > 0, every prompt reusing all of it), and each prompt's greedy text
# equals that of a separate run with that prompt alone.
# Usage: shared_prefix_test.sh path/to/longctx
set -euo pipefail
bin=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for i in $(seq 1 5000); do echo "In the beginning was the Word, and the Word was with God. Line $i."; done > "$work/big.txt"
"$bin" train --preset tiny --layers 2 --vocab-size 300 --data "$work/big.txt" --ctx 64 --batch 2 --steps 3 \
  --eval-every 0 -o "$work/m.gguf" > /dev/null 2>&1
shared="In the beginning was the Word, and the Word was with God. Line 12. In the beginning"
a="$shared was the"
b="$shared the Word and"
run() { "$bin" generate -m "$work/m.gguf" -n 12 --temp 0 --json "$@"; }
run -p "$a" > "$work/a.json"
run -p "$b" > "$work/b.json"
run -p "$a" -p "$b" > "$work/ab.json"
printf '%s\n\n%s\n' "$a" "$b" > "$work/prompts.txt"
run --prompt-file "$work/prompts.txt" > "$work/file.json"
python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
alone = [json.load(open(f"{w}/{n}.json")) for n in ("a", "b")]
for name in ("ab", "file"):
    j = json.load(open(f"{w}/{name}.json"))
    shared = j["shared_prefix_tokens"]
    assert shared >= 10, (name, shared)
    assert len(j["results"]) == 2, name
    for r, one in zip(j["results"], alone):
        assert r["prompt"] == one["prompt"], (name, r["prompt"])
        assert r["reused_tokens"] == shared, (name, r["reused_tokens"], shared)
        assert r["text"] == one["text"], (name, r["text"], one["text"])
        assert r["prompt_tokens"] == one["prompt_tokens"], name
    print(f"ok {name}: {shared} shared tokens computed once; texts equal the separate runs")
PY
