#!/usr/bin/python3
"""Markdown tables from `longctx bench attention --json` and bench/torch_attention.py --json:
time and peak memory per length side by side, then the attention engine's targets as ratios.

Usage: attention_report.py LONGCTX.json TORCH.json [MORE.json ...]
(more files: further runs of either tool, e.g. `longctx bench attention --precision bf16`)
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        print("attention_report.py: error: %s: %s" % (path, e), file=sys.stderr)
        sys.exit(1)


def main():
    if len(sys.argv) < 3:
        print("attention_report.py: error: usage: attention_report.py LONGCTX.json TORCH.json [MORE.json ...]",
              file=sys.stderr)
        sys.exit(1)
    docs = [load(a) for a in sys.argv[1:]]
    ours, torch = docs[0], docs[1]
    rec = {}
    for doc in docs:
        for r in doc["results"]:
            if "skipped" not in r:
                rec[(r["impl"], r["pass"], r["seq_len"])] = r
    impls = ["reference", "tiled-causal", "tiled-causal-bf16", "window-512", "window-512-bf16", "bigbird",
             "bigbird-bf16", "torch-standard", "torch-sdpa", "torch-sdpa-bf16"]
    lens = sorted({k[2] for k in rec})
    print("sgemm: longctx %.0f GFLOP/s, torch %.0f GFLOP/s; %d threads, %d heads, head_dim %d\n"
          % (ours["sgemm_gflops"], torch["sgemm_gflops"], ours["threads"], ours["heads"], ours["head_dim"]))
    for p in ("fwd", "fwd+bwd"):
        present = [i for i in impls if any((i, p, n) in rec for n in lens)]
        print("**%s** — seconds / peak MiB\n" % p)
        print("| seq_len | " + " | ".join(present) + " |")
        print("|---" * (len(present) + 1) + "|")
        for n in lens:
            cells = []
            for i in present:
                r = rec.get((i, p, n))
                cells.append("%.3g s / %.1f" % (r["seconds"], r["peak_bytes"] / 2**20) if r else "—")
            print("| %d | %s |" % (n, " | ".join(cells)))
        print()

    def get(i, p, n, key="seconds"):
        r = rec.get((i, p, n))
        return r[key] if r else None

    print("| target | measured | goal |\n|---|---|---|")
    for p in ("fwd", "fwd+bwd"):
        a, b = get("torch-standard", p, 8192), get("tiled-causal", p, 8192)
        if a and b:
            print("| tiled causal %s at 8K vs PyTorch standard | %.1fx (%.3f s vs %.2f s) | >= 4x |" % (p, a / b, b, a))
    for p in ("fwd", "fwd+bwd"):
        a, b = get("torch-sdpa", p, 8192), get("tiled-causal", p, 8192)
        if a and b:
            print("| tiled causal %s at 8K vs PyTorch SDPA (fused, fp32) | %.2fx (%.3f s vs %.3f s) | >= 1.3x |"
                  % (p, a / b, b, a))
    for p in ("fwd", "fwd+bwd"):
        a, b = get("torch-sdpa-bf16", p, 8192), get("tiled-causal-bf16", p, 8192)
        if a and b:
            print("| tiled causal bf16 %s at 8K vs PyTorch SDPA (bf16) | %.2fx (%.3f s vs %.3f s) | >= 1.5x |"
                  % (p, a / b, b, a))
        elif a:
            print("| tiled causal bf16 %s at 8K vs PyTorch SDPA (bf16) | not run (no AMX-BF16; SDPA bf16 %.3f s) "
                  "| >= 1.5x |" % (p, a))
    for p in ("fwd", "fwd+bwd"):
        theirs = [x for x in (get("torch-sdpa", p, 8192), get("torch-sdpa-bf16", p, 8192)) if x]
        mine = [x for x in (get("tiled-causal", p, 8192), get("tiled-causal-bf16", p, 8192)) if x]
        if theirs and mine:
            print("| tiled causal %s at 8K, best of ours vs PyTorch's best SDPA (fp32 or bf16) | %.2fx (%.3f s vs "
                  "%.3f s) | |" % (p, min(theirs) / min(mine), min(mine), min(theirs)))
    t = get("tiled-causal", "fwd+bwd", 65536)
    if t:
        print("| tiled causal fwd+bwd at 64K | %.1f s | < 100 s |" % t)
    g = get("tiled-causal", "fwd", 8192, "gflops")
    if g:
        print("| tiled causal fwd at 8K, share of sgemm | %.0f%% (%.0f of %.0f GFLOP/s) | >= 40%% |"
              % (100 * g / ours["sgemm_gflops"], g, ours["sgemm_gflops"]))
    for p in ("fwd", "fwd+bwd"):
        a, b = get("tiled-causal", p, 16384, "peak_bytes"), get("tiled-causal", p, 65536, "peak_bytes")
        if a and b:
            print("| tiled causal %s peak memory 64K / 16K | %.2f (%.1f / %.1f MiB) | <= 5 |" % (p, b / a, b / 2**20, a / 2**20))
        a, b = get("window-512", p, 8192), get("window-512", p, 65536)
        if a and b:
            print("| window 512 %s time 64K / 8K | %.2f (%.3f / %.3f s) | <= 9 |" % (p, b / a, b, a))


if __name__ == "__main__":
    main()
