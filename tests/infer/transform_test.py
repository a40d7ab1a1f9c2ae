#!/usr/bin/env python3
"""`longctx summarize / translate / rewrite` on SmolLM2-135M-Instruct, greedy.

  python3 tests/infer/transform_test.py BUILD/longctx SOURCE_DIR

  1. A short text is done in one pass (no map rounds) and gives a non-empty answer.
  2. A text past the context (--ctx 512, ~1,800 tokens of King James text) is summarised
     map-reduce: the chunks cover the text's words in order, each fits the context, and the final
     summary is exactly what `summarize` gives for the partial summaries joined (the reduce step
     run on its own).
  3. A long translation is its chunks' translations joined by newlines, each equal to
     `translate` of that chunk alone.
"""
import json
import os
import subprocess
import sys

BIN, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: longctx {' '.join(args)[:200]}: {r.stderr.strip()}")
    return r.stdout


def main():
    if not os.path.exists(MODEL):
        sys.exit(f"FAIL: {MODEL} is missing: run `bash scripts/fetch_model.sh`")
    corpus = os.environ.get("LONGCTX_CORPUS") or os.path.join(SRC, "data", "kjv.txt")
    lines = open(corpus, encoding="utf-8").read().split("\n")
    common = ["-m", MODEL, "-t", "2", "--json"]
    o = json.loads(run("summarize", *common, "-p", "The cat sat on the mat all afternoon, watching the birds.", "-n", "48"))
    check(o["output"] and not o["rounds"], f"a short text in one pass: {o['output'][:60]!r}")

    long_text = "\n".join(lines[1:120])
    o = json.loads(run("summarize", *common, "-p", long_text, "--ctx", "512", "-n", "64"))
    chunks = [p["text"] for p in o["rounds"][0]] if o["rounds"] else []
    check(len(chunks) >= 3, f"a text past the context is cut into chunks ({len(chunks)}, {len(o['rounds'])} round(s))")
    check(" ".join(chunks).split() == long_text.split(), "the chunks hold the text's words, in order, once each")
    sizes = [len(json.loads(run("tokenize", "-m", MODEL, "--json", "--no-special", "-p", c))["ids"]) for c in chunks]
    check(max(sizes) <= 512 - 64, f"each chunk fits the context beside the answer (tokens: {sizes})")
    partials = "\n\n".join(p["output"] for p in o["rounds"][-1])
    reduce = json.loads(run("summarize", *common, "-p", partials, "--ctx", "512", "-n", "64"))
    check(not reduce["rounds"] and reduce["output"] == o["output"],
          f"the summary is the reduce step's: {o['output'][:60]!r}")

    text = "\n".join(lines[1:60])
    o = json.loads(run("translate", *common, "--to", "French", "-p", text, "--ctx", "512", "-n", "96"))
    parts = o["rounds"][0] if o["rounds"] else []
    alone = [json.loads(run("translate", *common, "--to", "French", "-p", p["text"], "--ctx", "512", "-n", "96"))["output"]
             for p in parts]
    check(len(parts) >= 2 and [p["output"] for p in parts] == alone and o["output"] == "\n".join(alone),
          f"a long translation is its {len(parts)} chunks' translations, each as done alone")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


main()
