#!/usr/bin/python3
"""Plot attention-benchmark results: time and peak memory against sequence length.

Reads one or more JSON files in the schema written by
`longctx bench attention --json` ("tool": "longctx") and
bench/torch_attention.py --json ("tool": "torch"):
  {"tool": ..., "threads": T, "heads": H, "head_dim": d, ...,
   "results": [{"impl": ..., "pass": "fwd"|"fwd+bwd", "seq_len": n,
                "seconds": s, "peak_bytes": b, ...} | {..., "skipped": "reason"}]}
and draws two log-log panels side by side (time in s, peak memory in MiB),
one line per (impl, pass): one colour per impl, solid for fwd, dashed for
fwd+bwd. Skipped records are left out.

Example:
  /usr/bin/python3 tools/plot_attention.py longctx.json torch.json -o docs/attention_bench.png
"""

import argparse
import json
import os
import sys

PROG = "plot_attention.py"


def die(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


class Parser(argparse.ArgumentParser):
    def error(self, message):
        die(message)


def is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load(path):
    """Returns (header dict, list of usable records) or dies with one line."""
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        die("%s: no such file" % path)
    except OSError as e:
        die("%s: cannot read: %s" % (path, e.strerror or e))
    except ValueError as e:
        die("%s: not valid JSON: %s" % (path, e))
    if not isinstance(doc, dict):
        die("%s: top level must be a JSON object" % path)
    results = doc.get("results")
    if not isinstance(results, list):
        die("%s: missing \"results\" list" % path)
    recs = []
    for i, r in enumerate(results):
        where = "%s: results[%d]" % (path, i)
        if not isinstance(r, dict):
            die("%s: not an object" % where)
        for key in ("impl", "pass"):
            if not isinstance(r.get(key), str) or not r[key]:
                die("%s: missing or non-string \"%s\"" % (where, key))
        if r["pass"] not in ("fwd", "fwd+bwd"):
            die("%s: unknown pass %r (expected fwd or fwd+bwd)" % (where, r["pass"]))
        if not is_num(r.get("seq_len")) or r["seq_len"] <= 0:
            die("%s: missing or non-positive \"seq_len\"" % where)
        if "skipped" in r:
            continue
        for key in ("seconds", "peak_bytes"):
            if not is_num(r.get(key)):
                die("%s: missing or non-numeric \"%s\" (and no \"skipped\")" % (where, key))
        recs.append(r)
    return doc, recs


def len_label(n):
    n = int(n)
    if n >= 1024 and n % 1024 == 0:
        return "%dK" % (n // 1024)
    return str(n)


def describe(headers, key):
    vals = []
    for h in headers:
        v = h.get(key)
        if v is not None and v not in vals:
            vals.append(v)
    if not vals:
        return "?"
    if len(vals) > 1:
        print("%s: warning: files disagree on %s: %s" % (PROG, key, vals), file=sys.stderr)
    return "/".join(str(v) for v in vals)


def main(argv):
    ap = Parser(prog=PROG, description="Plot attention benchmark JSON files.")
    ap.add_argument("files", nargs="+", metavar="JSON", help="benchmark result files")
    ap.add_argument("-o", "--output", default="docs/attention_bench.png", help="output PNG (default %(default)s)")
    args = ap.parse_args(argv)

    loaded = [(path,) + load(path) for path in args.files]

    # One series per (impl, pass). If the same impl name turns up in several
    # files, the file name is added to the label so the series stay apart.
    impl_files = {}
    for path, _, recs in loaded:
        for r in recs:
            impl_files.setdefault(r["impl"], set()).add(path)
    series = {}   # (label, pass) -> {seq_len: record}
    impl_order = []
    for path, _, recs in loaded:
        for r in recs:
            label = r["impl"]
            if len(impl_files[label]) > 1:
                label = "%s (%s)" % (label, os.path.basename(path))
            if label not in impl_order:
                impl_order.append(label)
            series.setdefault((label, r["pass"]), {})[int(r["seq_len"])] = r
    if not series:
        die("no non-skipped results in %s" % ", ".join(args.files))

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.lines import Line2D
        from matplotlib.ticker import FixedLocator, FixedFormatter, NullLocator
    except ImportError as e:
        die("matplotlib is needed (Debian: apt-get install python3-matplotlib): %s" % e)

    colours = plt.get_cmap("tab10").colors
    colour = {label: colours[i % len(colours)] for i, label in enumerate(impl_order)}
    style = {"fwd": "-", "fwd+bwd": "--"}

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(13, 6))
    lengths = set()
    for (label, pass_name), by_n in sorted(series.items(), key=lambda kv: (impl_order.index(kv[0][0]), kv[0][1])):
        ns = sorted(by_n)
        lengths.update(ns)
        kw = dict(color=colour[label], linestyle=style[pass_name], marker="o", markersize=3.5, linewidth=1.6)
        # log axes cannot show non-positive values; leave such points out
        pts_t = [(n, by_n[n]["seconds"]) for n in ns if by_n[n]["seconds"] > 0]
        pts_m = [(n, by_n[n]["peak_bytes"] / 2.0 ** 20) for n in ns if by_n[n]["peak_bytes"] > 0]
        if pts_t:
            ax_t.plot(*zip(*pts_t), **kw)
        if pts_m:
            ax_m.plot(*zip(*pts_m), **kw)

    ticks = sorted(lengths)
    for ax, ylabel, title in ((ax_t, "time (s)", "Time"), (ax_m, "peak memory (MiB)", "Peak memory")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_major_formatter(FixedFormatter([len_label(n) for n in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
        if len(ticks) == 1:
            ax.set_xlim(ticks[0] / 1.5, ticks[0] * 1.5)
        ax.set_xlabel("sequence length")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", axis="y", alpha=0.12)

    headers = [doc for _, doc, _ in loaded]
    fig.suptitle("Attention, fp32 CPU, batch 1: threads=%s, heads=%s, head_dim=%s"
                 % (describe(headers, "threads"), describe(headers, "heads"), describe(headers, "head_dim")))

    handles = [Line2D([], [], color=colour[l], linewidth=2.5, label=l) for l in impl_order]
    handles += [Line2D([], [], color="0.3", linestyle=style[p], label=p) for p in ("fwd", "fwd+bwd")]
    ncol = min(len(handles), 6)
    rows = (len(handles) + ncol - 1) // ncol
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False)
    fig.tight_layout(rect=(0, 0.045 * rows + 0.02, 1, 0.95))

    out_dir = os.path.dirname(args.output)
    try:
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
        fig.savefig(args.output, dpi=130)
    except OSError as e:
        die("cannot write %s: %s" % (args.output, e.strerror or e))
    print("wrote %s" % args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
