#!/usr/bin/python3
"""Perplexity against evaluation length, from one or more `longctx eval --json` results.

Usage: plot_eval.py RESULT.json [RESULT.json ...] -o out.png [--title TEXT] [--labels a,b,...]

One line per file (label: --labels, else the position scheme and the checkpoint's name), log2
x axis at the evaluated lengths, a dotted vertical line at each distinct trained context.
Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys


def die(msg):
    print("plot_eval.py: error: %s" % msg, file=sys.stderr)
    sys.exit(1)


def load(path):
    try:
        with open(path) as f:
            doc = json.load(f)
        rows = [(int(r["length"]), float(r["ppl"])) for r in doc["results"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        die("%s: %s" % (path, e))
    if not rows:
        die("%s: no results" % path)
    return doc, sorted(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--title", default="Perplexity against evaluation length")
    ap.add_argument("--labels", default="")
    args = ap.parse_args()
    labels = args.labels.split(",") if args.labels else []
    if labels and len(labels) != len(args.files):
        die("--labels has %d names for %d files" % (len(labels), len(args.files)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        die("matplotlib is not installed (apt-get install python3-matplotlib)")
    fig, ax = plt.subplots(figsize=(8, 5))
    lengths, trained = set(), set()
    for i, path in enumerate(args.files):
        doc, rows = load(path)
        xs, ys = zip(*rows)
        lengths.update(xs)
        if "trained_ctx" in doc:
            trained.add(int(doc.get("train_len", doc["trained_ctx"])))
        label = labels[i] if labels else "%s (%s)" % (doc.get("position", "?"), os.path.basename(doc.get("model", path)))
        ax.plot(xs, ys, marker="o", label=label)
    for t in sorted(trained):
        ax.axvline(t, color="grey", linestyle=":", linewidth=1)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ticks = sorted(lengths)
    ax.set_xticks(ticks)
    ax.set_xticklabels([("%dK" % (t // 1024)) if t >= 1024 and t % 1024 == 0 else str(t) for t in ticks])
    ax.set_xlabel("evaluation length (tokens)")
    ax.set_ylabel("perplexity (held-out)")
    ax.set_title(args.title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    try:
        fig.savefig(args.output, dpi=120)
    except OSError as e:
        die("%s: %s" % (args.output, e))
    print("wrote %s" % args.output)


if __name__ == "__main__":
    main()
