#!/usr/bin/python3
"""Writes colt5.md and colt5.png from experiments/colt5/run.sh's results.

Usage: report.py RESULTS.jsonl OUT_DIR SECONDS COMMANDS_FILE
RESULTS.jsonl: one object per (variant, length), as run.sh writes them. notes.md beside this
script (hand-written analysis of the full run) is appended to the report.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def die(msg):
    print("report.py: error: %s" % msg, file=sys.stderr)
    sys.exit(1)


def routed_cell(entries):
    """'ffn 6.1/5.8/7.0/6.5%, attn_q ...': per router, its layers' routed percentages."""
    if not entries:
        return "-"
    by = {}
    for x in entries:
        by.setdefault(x.get("router", "ffn"), []).append((x["layer"], x["fraction"]))
    return ", ".join("%s %s%%" % (k, "/".join("%.1f" % (100 * f) for _, f in sorted(v))) for k, v in by.items())


def main():
    if len(sys.argv) != 5:
        die("usage: report.py RESULTS.jsonl OUT_DIR SECONDS COMMANDS_FILE")
    path, out, seconds, commands = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    try:
        rows = [json.loads(line) for line in open(path) if line.strip()]
    except (OSError, ValueError) as e:
        die("%s: %s" % (path, e))
    if not rows:
        die("%s has no results" % path)
    lengths = sorted({r["length"] for r in rows})
    variants = []
    for r in rows:
        if r["variant"] not in variants:
            variants.append(r["variant"])
    by = {(r["variant"], r["length"]): r for r in rows}

    md = ["# CoLT5 against dense and sliding-window attention\n"]
    md.append("Models: the `tiny` preset (4 layers, model_dim 256, 4 heads, SwiGLU, RMSNorm, RoPE, vocab 4096 "
              "from one shared tokenizer) trained on the KJV Bible's training part, one sequence per step, "
              "each for the same wall time (its step time measured first by `bench train`, its step count "
              "what fits, a cosine schedule over those steps). `window`: every layer `window:256`. "
              "`colt5`: every layer's feed-forward and attention routed (`ffn=light:128,heavy:1024,route:1/16;"
              "attn=window:128,light_heads:1,route_q:1/16,route_kv:1/8`: a light SwiGLU of hidden 128 for every "
              "token and the dense block's hidden-1024 SwiGLU for the routed 1/16; one head of local attention "
              "over 128 keys for every token and three heads of full attention from the routed 1/16 of the "
              "queries to the routed 1/8 of the key/values). `colt5-ffn` (when run): the feed-forward alone "
              "routed. Held-out loss over %s evaluation batches of the held-out part. Prefill: the "
              "trained checkpoint's `bench -m` at the training length; decode: 32 tokens after a prompt "
              "of length - 64. Ratios are to the dense model at the same length. `training s` is steps times "
              "the measured step time: where it falls short of the budget, `bench train`'s two-step "
              "estimate was slower than the run (a noisy VM).\n"
              % ("16" if seconds > 600 else "a few"))
    md.append("| length | model | train step (ms) | speed-up | steps in budget | training s | held-out loss | "
              "bits/byte | prefill tok/s | speed-up | decode tok/s | KV MiB | routed (per layer) |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for L in lengths:
        dense = by.get(("dense", L))
        for v in variants:
            r = by.get((v, L))
            if not r:
                continue
            step_ms = 1000.0 * r["length"] / r["train_tokens_per_s"]
            sp = dense and dense["train_tokens_per_s"] and r["train_tokens_per_s"] / dense["train_tokens_per_s"]
            pp = dense and r["prefill_tokens_per_s"] / dense["prefill_tokens_per_s"]
            routed = routed_cell(r.get("routed"))
            md.append("| %d | %s | %.0f | %s | %d | %.0f | %.4f | %.4f | %.0f | %s | %.0f | %.1f | %s |" % (
                L, v, step_ms, "%.2fx" % sp if sp else "-", r["steps"], r["steps"] * step_ms / 1000.0,
                r["val_loss"], r["val_bpb"],
                r["prefill_tokens_per_s"], "%.2fx" % pp if pp else "-", r["decode_tokens_per_s"],
                r["kv_bytes"] / 2 ** 20, routed))
    md.append("")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for v in variants:
            xs = [L for L in lengths if (v, L) in by]
            axes[0].plot(xs, [by[(v, L)]["train_tokens_per_s"] for L in xs], marker="o", label=v)
            axes[1].plot(xs, [by[(v, L)]["val_loss"] for L in xs], marker="o", label=v)
        for ax, title in zip(axes, ["training tokens/s", "held-out loss after the same wall time"]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("sequence length")
            ax.set_title(title)
            ax.legend()
        fig.tight_layout()
        fig.savefig(os.path.join(out, "colt5.png"), dpi=90)
        md.append("![training speed and held-out loss](colt5.png)\n")
    except ImportError:
        md.append("(matplotlib is not installed: no plot)\n")
    md.append("Wall time of the whole run: %d s on this machine. Commands, in order:\n" % seconds)
    md.append("```")
    md.append(open(commands).read().rstrip())
    md.append("```\n")
    notes = os.path.join(HERE, "notes.md")
    if os.path.exists(notes) and out.rstrip("/").endswith("docs/experiments"):
        md.append(open(notes).read())
    with open(os.path.join(out, "colt5.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("wrote %s" % os.path.join(out, "colt5.md"))


if __name__ == "__main__":
    main()
