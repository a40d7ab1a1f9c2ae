#!/usr/bin/env python3
"""Sentence-embedding throughput of sentence-transformers (PyTorch 2.x from pip), the reference
for bench/embed_bench.sh.

  .pydeps/bench-venv/bin/python bench/torch_embed.py MODEL_DIR TEXTS_FILE --batch 32 --threads 2 [--bf16]

SentenceTransformer(MODEL_DIR).encode(texts, batch_size=B) as its users call it (it sorts texts
by length and pads each batch to its longest), after one warm-up pass over the same texts; the
best of --reps timed passes. --bf16: under torch.autocast("cpu", dtype=torch.bfloat16). Prints
one JSON line: texts, tokens (the texts' own token counts, [CLS]/[SEP] included, no padding),
seconds, texts_per_s, tokens_per_s, and the largest |cosine - 1| against the fp32 vectors of the
same run when --bf16.
"""
import argparse
import contextlib
import json
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

ap = argparse.ArgumentParser()
ap.add_argument("model")
ap.add_argument("texts")
ap.add_argument("--batch", type=int, default=32)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--reps", type=int, default=2)
ap.add_argument("--bf16", action="store_true")
a = ap.parse_args()
torch.set_num_threads(a.threads)
texts = [l.rstrip("\n") for l in open(a.texts, encoding="utf-8") if l.strip()]
model = SentenceTransformer(a.model, device="cpu")
model.eval()
tokens = sum(len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)["input_ids"])
ctx = torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext()


def encode():
    with torch.inference_mode(), ctx:
        return model.encode(texts, batch_size=a.batch, convert_to_numpy=True, normalize_embeddings=False)


vecs = encode()  # warm-up
best = float("inf")
for _ in range(a.reps):
    t0 = time.perf_counter()
    vecs = encode()
    best = min(best, time.perf_counter() - t0)
out = {"engine": "sentence-transformers", "torch": torch.__version__, "dtype": "bf16" if a.bf16 else "fp32",
       "batch": a.batch, "threads": a.threads, "texts": len(texts), "tokens": tokens, "seconds": best,
       "texts_per_s": len(texts) / best, "tokens_per_s": tokens / best}
if a.bf16:
    with torch.inference_mode():
        ref = model.encode(texts, batch_size=a.batch, convert_to_numpy=True)
    v = vecs.astype(np.float64)
    cos = (v * ref).sum(1) / (np.linalg.norm(v, axis=1) * np.linalg.norm(ref, axis=1))
    out["max_cosine_error_vs_fp32"] = float(np.abs(cos - 1).max())
print(json.dumps(out))
