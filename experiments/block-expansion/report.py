#!/usr/bin/python3
"""Writes block-expansion.md and block-expansion.png from run.sh's results.jsonl (one JSON object
per model and method: trainable parameters, training seconds, held-out loss in nats per token on
C and on the KJV). notes.md beside this script (what came out) is appended to the full run's
page. Needs matplotlib (Debian: python3-matplotlib).

Usage: report.py results.jsonl --out DIR --steps N --seconds S --commands FILE [--quick]"""
import argparse
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
LABELS = {"base": "before", "expansion": "block expansion (added layers)", "last-layers": "last layers",
          "lora": "LoRA (all matrices)", "full": "full fine-tuning"}
MODELS = {"smollm2": "SmolLM2-135M-Instruct (Q4_1, 30 layers)", "kjv-tiny": "our 4-layer model trained on the KJV"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--seconds", type=int, required=True)
    ap.add_argument("--commands", required=True)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    rows = [json.loads(l) for l in open(a.results) if l.strip()]
    md = ["# Block expansion against the other ways to learn a new domain\n",
          "C source (the machine's `/usr/include` headers, 3 MB) taught to two models for %d steps of "
          "4 x 256 tokens. Loss: held-out nats per token (`longctx perplexity --ctx 256`), on the new "
          "domain (C) and on the old one (the KJV's held-out part). Lower C loss is learning; a higher "
          "KJV loss after than before is forgetting. Produced by `experiments/block-expansion/run.sh` "
          "in %dm%02ds on 2 cores.\n" % (a.steps, a.seconds // 60, a.seconds % 60)]
    for model in MODELS:
        rs = [r for r in rows if r["model"] == model]
        if not rs:
            continue
        base = next(r for r in rs if r["method"] == "base")
        md.append("## %s\n" % MODELS[model])
        md.append("| method | trainable parameters | train time | C loss | KJV loss | KJV change (forgetting) |")
        md.append("|---|---|---|---|---|---|")
        for r in rs:
            tp = "-" if r["method"] == "base" else "%.2fM" % (r["trainable"] / 1e6)
            tt = "-" if r["method"] == "base" else "%ds" % r["seconds"]
            d = r["kjv_loss"] - base["kjv_loss"]
            md.append("| %s | %s | %s | %.3f | %.3f | %s |" % (LABELS[r["method"]], tp, tt, r["c_loss"], r["kjv_loss"],
                                                             "-" if r["method"] == "base" else "%+.3f" % d))
        md.append("")
    md.append("LLaMA Pro's own ablation (law domain, LLaMA2-7B; their overall score, higher is better): "
              "8 added blocks 65.91, full fine-tuning 62.82, LoRA 61.75; blocks added at the bottom 15.08.\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, axes = plt.subplots(1, len(MODELS), figsize=(11, 4))
        for ax, model in zip(axes, MODELS):
            rs = [r for r in rows if r["model"] == model and r["method"] != "base"]
            base = next((r for r in rows if r["model"] == model and r["method"] == "base"), None)
            if not rs or not base:
                continue
            x = range(len(rs))
            ax.bar([i - 0.2 for i in x], [base["c_loss"] - r["c_loss"] for r in rs], 0.4, label="C loss drop (learning)")
            ax.bar([i + 0.2 for i in x], [r["kjv_loss"] - base["kjv_loss"] for r in rs], 0.4,
                   label="KJV loss rise (forgetting)")
            ax.set_xticks(list(x))
            ax.set_xticklabels([LABELS[r["method"]].split(" (")[0] for r in rs], rotation=15)
            ax.set_title(MODELS[model], fontsize=9)
            ax.axhline(0, color="black", linewidth=0.5)
            ax.set_ylabel("nats per token")
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(a.out, "block-expansion.png"), dpi=100)
        md.append("![learning and forgetting per method](block-expansion.png)\n")
    except ImportError:
        md.append("(no plot: matplotlib is missing)\n")
    notes = os.path.join(HERE, "notes.md")
    if not a.quick and os.path.exists(notes):
        md.append(open(notes).read())
    md.append("## Commands\n\n```sh\n" + open(a.commands).read() + "```\n")
    path = os.path.join(a.out, "block-expansion.md")
    with open(path, "w") as f:
        f.write("\n".join(md))
    print("wrote", path)


if __name__ == "__main__":
    main()
