#!/usr/bin/env bash
# Sentence-embedding throughput: `longctx embed` against sentence-transformers on PyTorch 2.x from
# pip (bench/setup_venv.sh), both on all-MiniLM-L6-v2 (scripts/fetch_model.sh), the same texts
# and the same threads, one after the other in this run. Texts: the first N verses of the King
# James Bible longer than 20 bytes (data/kjv.txt), one per line. longctx runs the Hugging Face
# files (fp32, and with --precision bf16: bf16 products with fp32 sums on the AMX tiles) and their
# Q8_0 GGUF (export --arch bert + quantize, made here; on a CPU with AMX its products run on the
# int8 tiles); PyTorch runs fp32 and under bf16 autocast, and the better
# of those is the reference. Batch 1 and 32 texts per pass. Each line reports the largest
# cosine error against the fp32 vectors of the same engine.
# Usage: bench/embed_bench.sh [texts=2048] [threads=2]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2048}
threads=${2:-2}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX}
model=models/all-MiniLM-L6-v2
py=$(bash bench/setup_venv.sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
texts=$work/texts.txt
awk -v n="$n" 'length($0) > 20 && c < n { print; c++ }' data/kjv.txt > "$texts"
./build/longctx export "$model" "$work/minilm.gguf" --arch bert > /dev/null
./build/longctx quantize "$work/minilm.gguf" "$work/minilm-q8_0.gguf" q8_0 > /dev/null
results=()
for b in 1 32; do
  # Configurations: the Hugging Face files in fp32 and with bf16 products (--precision bf16: AMX
  # tiles, bf16 operands, fp32 sums), and the Q8_0 GGUF.
  for cfg in "$model fp32" "$model bf16" "$work/minilm-q8_0.gguf fp32"; do
    read -r m prec <<<"$cfg"
    dtype=$([ "${m%.gguf}" != "$m" ] && echo q8_0 || echo "$prec")
    best=""
    for rep in 1 2; do
      line=$(./build/longctx embed -m "$m" -f "$texts" --batch "$b" -t "$threads" --precision "$prec" --timings --json 2>&1 >"$work/out_$rep.json" | tail -1)
      best=$(python3 -c 'import json,sys; a=[json.loads(x) for x in sys.argv[1:] if x]; print(json.dumps(max(a, key=lambda r: r["texts_per_s"])))' "$line" "$best")
    done
    cp "$work/out_1.json" "$work/vec_${dtype}_$b.json"
    results+=("$(python3 - "$best" "$b" "$dtype" "$work/vec_fp32_$b.json" "$work/out_1.json" <<'PY'
import json, sys
import numpy as np
r = json.loads(sys.argv[1])
ref = np.array([e["embedding"] for e in json.load(open(sys.argv[4]))["data"]])
got = np.array([e["embedding"] for e in json.load(open(sys.argv[5]))["data"]])
cos = (ref * got).sum(1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
r.update(engine="longctx", batch=int(sys.argv[2]), dtype=sys.argv[3],
         max_cosine_error_vs_fp32=float(np.abs(cos - 1).max()))
print(json.dumps(r))
PY
)")
  done
  for dt in fp32 bf16; do
    results+=("$("$py" bench/torch_embed.py "$model" "$texts" --batch "$b" --threads "$threads" $([ $dt = bf16 ] && echo --bf16) 2>/dev/null | tail -1)")
  done
done
printf '%s\n' "${results[@]}"
python3 - "${results[@]}" <<'PY'
import json, sys
rows = [json.loads(x) for x in sys.argv[1:]]
print("| batch | engine | weights / math | texts/s | tokens/s | max cosine error vs its fp32 | vs PyTorch's best |")
print("|---|---|---|---|---|---|---|")
for b in (1, 32):
    best = max(r["texts_per_s"] for r in rows if r["batch"] == b and r["engine"] != "longctx")
    for r in rows:
        if r["batch"] != b:
            continue
        what = {"fp32": "fp32", "q8_0": "Q8_0, int8 tiles",
                "bf16": "bf16 products" if r["engine"] == "longctx" else "bf16 autocast"}[r["dtype"]]
        err = r.get("max_cosine_error_vs_fp32", 0.0)
        print(f"| {b} | {r['engine']} | {what} | {r['texts_per_s']:.1f} | {r['tokens_per_s']:.0f} | {err:.1e} | "
              f"{r['texts_per_s'] / best:.2f}x |")
PY
