#!/usr/bin/env bash
# Sentence-embedding throughput: `longctx embed` against sentence-transformers on PyTorch 2.x from
# pip (bench/setup_venv.sh), both on all-MiniLM-L6-v2 (scripts/fetch_model.sh), the same texts
# and the same threads, one after the other in this run. Texts: the first N verses of the King
# James Bible longer than 20 bytes (data/kjv.txt), one per line. PyTorch runs in fp32 and under
# bf16 autocast; the better one is the reference. Batch 1 and 32 texts per pass.
# Usage: bench/embed_bench.sh [texts=512] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-512}
threads=${2:-2}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
model=models/all-MiniLM-L6-v2
py=$(bash bench/setup_venv.sh)
texts=$(mktemp)
trap 'rm -f "$texts"' EXIT
awk 'length($0) > 20' data/kjv.txt | head -n "$n" > "$texts"
results=()
for b in 1 32; do
  best=""
  for rep in 1 2; do
    line=$(./build/longctx embed -m "$model" -f "$texts" --batch "$b" -t "$threads" --timings 2>&1 >/dev/null | tail -1)
    best=$(python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(max(a, key=lambda r: r["texts_per_s"])))' "$line" "$best")
  done
  results+=("$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.update(engine="longctx", batch=int(sys.argv[2])); print(json.dumps(r))' "$best" "$b")")
  for dt in fp32 bf16; do
    results+=("$("$py" bench/torch_embed.py "$model" "$texts" --batch "$b" --threads "$threads" $([ $dt = bf16 ] && echo --bf16) 2>/dev/null | tail -1)")
  done
done
printf '%s\n' "${results[@]}"
python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(x) for x in sys.argv[1:]]
print("| batch | longctx texts/s (tokens/s) | sentence-transformers fp32 | bf16 autocast | longctx / best |")
print("|---|---|---|---|---|")
for b in (1, 32):
    o = next(r for r in rows if r["engine"] == "longctx" and r["batch"] == b)
    f = next(r for r in rows if r["engine"] != "longctx" and r["batch"] == b and r["dtype"] == "fp32")
    h = next(r for r in rows if r["engine"] != "longctx" and r["batch"] == b and r["dtype"] == "bf16")
    best = max(f["texts_per_s"], h["texts_per_s"])
    print(f"| {b} | {o['texts_per_s']:.1f} ({o['tokens_per_s']:.0f}) | {f['texts_per_s']:.1f} ({f['tokens_per_s']:.0f}) "
          f"| {h['texts_per_s']:.1f} ({h['tokens_per_s']:.0f}) | {o['texts_per_s'] / best:.2f}x |")
PY
