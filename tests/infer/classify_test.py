#!/usr/bin/env python3
"""`longctx classify` / `sentiment` against log-likelihoods from a separate full forward.

  python3 tests/infer/classify_test.py BUILD/longctx SOURCE_DIR

On SmolLM2-135M-Instruct (weights dequantized, so every path is the exact fp32 product):
  1. for texts and labels (one of them several tokens long), in the chat form and with a plain
     --template (also --length-norm): each label's logprob equals the sum of log-softmax values
     computed here, in NumPy, from `longctx logits` (one prefill pass over the prompt and the
     label's tokens, the ids classify reports), within 2e-3; the probabilities equal the softmax
     of those sums (or of the per-token means) within 1e-4, and the label printed is the best;
  2. -f FILE.jsonl prints one line per text and the accuracy of the labels given;
  3. sentiment names the sentiment of three plain sentences.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

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
    return r.stdout, r.stderr


def reference(prompt, tokens, d):
    ids = prompt + tokens
    out = os.path.join(d, "l.npy")
    run("logits", "-m", MODEL, "--dequantize", "--tokens", ",".join(map(str, ids)), "-o", out, "-t", "2")
    logits = np.load(out).astype(np.float64)
    lp = 0.0
    for j, t in enumerate(tokens):
        row = logits[len(prompt) - 1 + j]
        m = row.max()
        lp += row[t] - m - np.log(np.exp(row - m).sum())
    return lp


def main():
    if not os.path.exists(MODEL):
        sys.exit(f"FAIL: {MODEL} is missing: run `bash scripts/fetch_model.sh`")
    labels = "science fiction,romance,history"
    cases = [("A starship crew wakes from cryosleep to find the colony silent.", []),
             ("In 1815 Napoleon was defeated at Waterloo.", []),
             ("Two strangers meet in Paris and fall in love.", ["--length-norm"]),
             ("Rockets and robots everywhere.", ["--template", "Review: {text}\nGenre ({labels}):"])]
    with tempfile.TemporaryDirectory() as d:
        for text, extra in cases:
            out, _ = run("classify", "-m", MODEL, "--dequantize", "--labels", labels, "-p", text, "--json", "-t", "2", *extra)
            o = json.loads(out)
            refs = [reference(o["prompt_tokens"], l["tokens"], d) for l in o["labels"]]
            got = [l["logprob"] for l in o["labels"]]
            check(max(abs(a - b) for a, b in zip(got, refs)) <= 2e-3,
                  f"{text[:30]!r} {extra[:1]}: logprobs {np.round(got, 4).tolist()} vs full forward {np.round(refs, 4).tolist()}")
            scores = np.array([r / len(l["tokens"]) if "--length-norm" in extra else r for r, l in zip(refs, o["labels"])])
            p = np.exp(scores - scores.max())
            p /= p.sum()
            check(np.abs(p - [l["prob"] for l in o["labels"]]).max() <= 1e-4 and o["label"] == o["labels"][int(np.argmax(p))]["label"],
                  f"{text[:30]!r}: probabilities {np.round(p, 4).tolist()} and the label {o['label']!r}")
            check(len(o["labels"][0]["tokens"]) >= 2, "'science fiction' is scored over several tokens")

        path = os.path.join(d, "texts.jsonl")
        with open(path, "w") as f:
            f.write(json.dumps({"text": "I love this, it is wonderful!", "label": "positive"}) + "\n\n")
            f.write(json.dumps({"text": "This was awful and I hated it.", "label": "negative"}) + "\n")
        out, err = run("sentiment", "-m", MODEL, "-f", path, "-t", "2")
        check(len(out.strip().split("\n")) == 2 and "accuracy" in err, f"-f: one line per text and the accuracy ({err.strip()})")
        for text, want in [("I absolutely love this movie, it is wonderful!", "positive"),
                           ("This was the worst meal I have ever had. Disgusting.", "negative"),
                           ("The train leaves at 9 am from platform 4.", "neutral")]:
            out, _ = run("sentiment", "-m", MODEL, "-p", text, "-t", "2")
            check(out.split("\t")[0] == want, f"sentiment of {text[:30]!r}: {out.strip()}")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


main()
