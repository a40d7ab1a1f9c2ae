#!/usr/bin/python3
"""Writes extrapolation.md and extrapolation.png from `longctx eval --json` results.

Usage: report.py --out DIR --seconds S --steps N --steps2 N2 --layers K --commands FILE [--quick]
                 LABEL=RESULT.json [LABEL=RESULT.json ...]
The first four labels are the single-stage models (trained at 128); notes.md beside this script
(hand-written analysis of the full run) is appended to the full report.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
L_TRAIN = 128


def die(msg):
    print("report.py: error: %s" % msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--steps2", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("results", nargs="+")
    a = ap.parse_args()
    runs = []
    for item in a.results:
        label, _, path = item.partition("=")
        try:
            with open(path) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            die("%s: %s" % (path, e))
        runs.append((label, path, doc, {r["length"]: r for r in doc["results"]}))
    lengths = sorted({L for _, _, _, res in runs for L in res})

    md = []
    md.append("# Train short, test long: perplexity against evaluation length\n")
    if a.quick:
        md.append("**Quick run** (`--quick`: %d layers, %d steps; a smoke test of the pipeline, "
                  "its numbers mean little).\n" % (a.layers, a.steps))
    md.append("Models: the `tiny` preset (%d layers, model_dim 256, 4 heads, SwiGLU, RMSNorm, vocab 4096 "
              "from one shared tokenizer), identical except for the position scheme, trained with the same "
              "seed, data order and %d steps of batch 16 × %d tokens on the KJV Bible's training part. "
              "Two-stage: RoPE and ALiBi continued from those checkpoints at 512 tokens for %d steps "
              "(batch 4, fresh AdamW, lr 5e-4). Evaluation: non-overlapping windows on the held-out part "
              "(every 20th 16 KiB block), at most about the same number of scored tokens per length.\n"
              % (a.layers, a.steps, L_TRAIN, a.steps2))
    md.append("Held-out perplexity (bits per byte in brackets); L_train = %d:\n" % L_TRAIN)
    md.append("| model | " + " | ".join(str(L) for L in lengths) + " |")
    md.append("|---" * (len(lengths) + 1) + "|")
    for label, _, _, res in runs:
        cells = []
        for L in lengths:
            r = res.get(L)
            cells.append("%.2f (%.3f)" % (r["ppl"], r["bpb"]) if r else "n/a")
        md.append("| %s | %s |" % (label, " | ".join(cells)))
    md.append("")
    md.append("Learned positions have a table of 128 rows and cannot be evaluated further (`longctx eval` "
              "refuses); they also carry 128 × 256 more parameters than the others (+1%).\n")

    # The paper's expectations, at the longest evaluated length up to 8 x L_train.
    far = max([L for L in lengths if L <= 8 * L_TRAIN] or [L_TRAIN])
    md.append("What the ALiBi paper leads us to expect, checked at L = %d (%g × L_train):\n" % (far, far / L_TRAIN))
    md.append("| model | ppl(%d) / ppl(%d) | expectation |" % (far, L_TRAIN))
    md.append("|---|---|---|")
    expect = {"alibi": ("<= 1.05", lambda x: x <= 1.05), "sinusoidal": ("> 1.5", lambda x: x > 1.5)}
    for label, _, _, res in runs:
        if L_TRAIN in res and far in res:
            ratio = res[far]["ppl"] / res[L_TRAIN]["ppl"]
            e = expect.get(label)
            verdict = ("%s: %s" % (e[0], "met" if e[1](ratio) else "not met")) if e else ""
            md.append("| %s | %.3f | %s |" % (label, ratio, verdict))
    md.append("")

    png = os.path.join(a.out, "extrapolation.png")
    cmd = ["/usr/bin/python3", os.path.join(HERE, "..", "..", "tools", "plot_eval.py")]
    cmd += [p for _, p, _, _ in runs] + ["-o", png, "--labels", ",".join(l for l, _, _, _ in runs),
                                          "--title", "Held-out perplexity against evaluation length (trained at 128)"]
    subprocess.run(cmd, check=True)
    md.append("![perplexity against evaluation length](extrapolation.png)\n")

    m, s = divmod(a.seconds, 60)
    md.append("Wall time of the whole run (training, evaluation, plot) on 2 cores: **%dm%02ds**.\n" % (m, s))
    md.append("Command: `bash experiments/extrapolation/run.sh%s`. It ran:\n" % (" --quick" if a.quick else ""))
    md.append("```sh")
    with open(a.commands) as f:
        md.extend(line.rstrip() for line in f)
    md.append("```\n")
    notes = os.path.join(HERE, "notes.md")
    if not a.quick and os.path.exists(notes):
        with open(notes) as f:
            md.append(f.read())
    path = os.path.join(a.out, "extrapolation.md")
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(md) + "\n")
    os.replace(path + ".tmp", path)
    print("wrote %s and %s" % (path, png))


if __name__ == "__main__":
    main()
