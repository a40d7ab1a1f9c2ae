#!/usr/bin/python3
"""PyTorch side of the causal-attention benchmark (CPU, fp32, batch 1).

For every --seq-len n it times, and measures the peak memory of, two
implementations in two passes:
  torch-standard  S = q @ k^T * (1/sqrt(d)); causal mask -> -inf; P = softmax(S);
                  O = P @ v  (materialises the full [heads, n, n] score matrix)
  torch-sdpa      torch.nn.functional.scaled_dot_product_attention(is_causal=True),
                  only where torch has it (>= 2.0); otherwise recorded as skipped
  torch-sdpa-bf16 the same on bf16 copies of q, k, v and dO (PyTorch's bf16 attention: on a
                  CPU with AMX its fused kernel runs on the tiles; without, it may be slower
                  than fp32, and "PyTorch's best" is the faster of the two)
  passes: "fwd" (under torch.no_grad()) and "fwd+bwd" (O.backward(dO), random dO)
plus a reference "sgemm" row: torch.mm of two 2048x2048 fp32 matrices.

Time is the best of --repeat runs (default 3, or 1 for n >= 8192), after one
unmeasured warm-up run for n <= 2048 only. Peak memory of a run is
VmHWM - VmRSS, the baseline being read just after resetting the peak RSS
(echo 5 > /proc/self/clear_refs), with q, k, v and dO already allocated and
touched; the largest value over the measured runs is reported. Runs whose rough
estimate (fwd: 3*H*n*n*4 bytes, fwd+bwd: 6*H*n*n*4 bytes) exceeds
--mem-budget-gb (10^9 bytes) are skipped and recorded as such.

The JSON written by --json has the same schema as `longctx bench attention --json`:
  {"tool": "torch", "torch_version": "...", "threads": T, "heads": H, "head_dim": d,
   "sgemm_gflops": X,
   "results": [{"impl": ..., "pass": "fwd"|"fwd+bwd", "seq_len": n, "seconds": s,
                "peak_bytes": b, "gflops": g}, ...,
               {"impl": ..., "pass": ..., "seq_len": n, "skipped": "reason"}]}

bench/attention_bench.sh runs it with PyTorch 2.x from the bench venv (bench/setup_venv.sh), which
has the fused SDPA; Debian's python3-torch (1.13) also works (OPENBLAS_CORETYPE=SkylakeX is
needed on CPUs that Debian's OpenBLAS misdetects) but has no SDPA:
  .pydeps/bench-venv/bin/python bench/torch_attention.py \
      --seq-len 1024,2048,4096,8192 --heads 8 --head-dim 64 --threads 2 --json out.json
"""

import argparse
import ctypes
import ctypes.util
import gc
import json
import math
import os
import sys
import time

PROG = "torch_attention.py"
GB = 1e9


def die(msg):
    print("%s: error: %s" % (PROG, msg), file=sys.stderr)
    sys.exit(1)


class Parser(argparse.ArgumentParser):
    # One clear error line and exit status 1 (argparse's default is usage + exit 2).
    def error(self, message):
        die(message)


def positive_int(s):
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % s)
    if v <= 0:
        raise argparse.ArgumentTypeError("expected a positive integer, got %r" % s)
    return v


def positive_float(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % s)
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError("expected a positive number, got %r" % s)
    return v


def int_list(s):
    parts = [p.strip() for p in s.split(",")]
    if not parts or any(p == "" for p in parts):
        raise argparse.ArgumentTypeError("expected comma-separated positive integers, got %r" % s)
    out = []
    for p in parts:
        try:
            v = int(p)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not an integer (in %r)" % (p, s))
        if v <= 0:
            raise argparse.ArgumentTypeError("%r is not a positive integer (in %r)" % (p, s))
        out.append(v)
    return out


def pass_list(s):
    parts = [p.strip() for p in s.split(",")]
    for p in parts:
        if p not in ("fwd", "fwd+bwd"):
            raise argparse.ArgumentTypeError("unknown pass %r (expected fwd and/or fwd+bwd)" % p)
    return list(dict.fromkeys(parts))


def parse_args(argv):
    ap = Parser(prog=PROG, description="PyTorch causal-attention benchmark (time and peak memory).")
    ap.add_argument("--seq-len", type=int_list, default=[1024, 2048, 4096, 8192],
                    help="comma-separated sequence lengths (default 1024,2048,4096,8192)")
    ap.add_argument("--heads", type=positive_int, default=8)
    ap.add_argument("--head-dim", type=positive_int, default=64)
    ap.add_argument("--threads", type=positive_int, default=2)
    ap.add_argument("--mem-budget-gb", type=positive_float, default=16.0,
                    help="skip runs whose estimated memory exceeds this many GB (10^9 B; default 16)")
    ap.add_argument("--repeat", type=positive_int, default=None,
                    help="measured runs per case, best time kept (default 3, or 1 for n >= 8192)")
    ap.add_argument("--passes", type=pass_list, default=["fwd", "fwd+bwd"],
                    help="comma-separated passes to run: fwd,fwd+bwd (default both)")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    return ap.parse_args(argv)


# ---------------------------------------------------------------- memory probes

def _libc():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


LIBC = _libc()


def status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError("no %s in /proc/self/status" % field)


def reset_peak():
    """gc, give free heap pages back to the OS, reset VmHWM; returns baseline RSS in bytes.

    malloc_trim matters: pages that glibc kept from an earlier run would otherwise
    be reused without raising the RSS, hiding part of the next run's peak."""
    gc.collect()
    if LIBC is not None and hasattr(LIBC, "malloc_trim"):
        LIBC.malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return status_kib("VmRSS") * 1024


def peak_since_reset():
    return status_kib("VmHWM") * 1024


# ---------------------------------------------------------------- implementations

def standard_attention(torch, q, k, v):
    # The causal mask is built inside the timed region on purpose: materialising
    # an n x n mask is part of what the textbook implementation pays for, in
    # time and in memory, so it is charged to it.
    n, d = q.shape[-2], q.shape[-1]
    s = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d))
    mask = torch.ones(n, n, dtype=torch.bool).triu_(1)
    s.masked_fill_(mask, float("-inf"))
    p = torch.softmax(s, dim=-1)
    return torch.matmul(p, v)


def sdpa_attention(torch, q, k, v):
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)


# Useful causal flops (the convention the longctx side uses too). One n x n x d
# matmul restricted to the causal half costs n^2 * d flops per head, so
#   fwd:     QK^T and PV                            -> 2 * n^2 * d * H
#   fwd+bwd: fwd 2 + bwd 5 (dV = P^T dO, dP = dO V^T,
#            dQ = dS K, dK = dS^T Q, and QK^T
#            recomputed as flash-style kernels do)  -> 7 * n^2 * d * H
# gflops is always reported against these numbers, whatever an implementation
# really computes (the standard one does the full square and no recomputation).
FLOP_FACTOR = {"fwd": 2.0, "fwd+bwd": 7.0}

# Rough memory estimate used for --mem-budget-gb, in units of one H*n*n fp32 matrix.
MEM_FACTOR = {"fwd": 3, "fwd+bwd": 6}


def measure(torch, fn, q, k, v, do, pass_name, n, repeat, warmup):
    """Returns (best seconds, max peak bytes)."""
    def one_run():
        if pass_name == "fwd":
            with torch.no_grad():
                t0 = time.perf_counter()
                o = fn(torch, q, k, v)
                t1 = time.perf_counter()
        else:
            t0 = time.perf_counter()
            o = fn(torch, q, k, v)
            o.backward(do)
            t1 = time.perf_counter()
        del o
        return t1 - t0

    def clear_grads():
        for t in (q, k, v):
            t.grad = None

    if warmup:
        one_run()
        clear_grads()
    best, peak = None, 0
    for _ in range(repeat):
        base = reset_peak()
        dt = one_run()
        peak = max(peak, peak_since_reset() - base)
        clear_grads()
        best = dt if best is None else min(best, dt)
    return best, peak


def measure_sgemm(torch, size=2048, repeat=5):
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    torch.mm(a, b)  # warm-up (also initialises the BLAS thread pool)
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        torch.mm(a, b)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return 2.0 * size ** 3 / best / 1e9


# ---------------------------------------------------------------- output

def fmt_row(r):
    head = "%-16s %-8s %7d" % (r["impl"], r["pass"], r["seq_len"])
    if "skipped" in r:
        return head + "   skipped: " + r["skipped"]
    return head + " %10.4f %11.1f %9.2f" % (r["seconds"], r["peak_bytes"] / 2.0 ** 20, r["gflops"])


def main(argv):
    args = parse_args(argv)
    if not os.path.exists("/proc/self/clear_refs"):
        die("/proc/self/clear_refs is not available; peak memory cannot be measured (Linux only)")

    try:
        import torch
    except ImportError as e:
        die("cannot import torch (%s); run with Debian's /usr/bin/python3 (python3-torch)" % e)

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    H, d = args.heads, args.head_dim
    version = torch.__version__
    have_sdpa = hasattr(torch.nn.functional, "scaled_dot_product_attention")

    try:
        reset_peak()
    except OSError as e:
        die("cannot reset peak RSS via /proc/self/clear_refs (%s)" % e)

    sgemm = measure_sgemm(torch)
    print("torch %s, threads=%d, heads=%d, head_dim=%d, mem budget %.3g GB"
          % (version, args.threads, H, d, args.mem_budget_gb))
    print("sgemm 2048x2048: %.1f GFLOP/s" % sgemm)
    print("%-16s %-8s %7s %10s %11s %9s" % ("impl", "pass", "seq_len", "seconds", "peak MiB", "GFLOP/s"))
    sys.stdout.flush()

    impls = [("torch-standard", standard_attention), ("torch-sdpa", sdpa_attention if have_sdpa else None),
             ("torch-sdpa-bf16", sdpa_attention if have_sdpa else None)]
    results = []
    for n in args.seq_len:
        repeat = args.repeat if args.repeat is not None else (1 if n >= 8192 else 3)
        warmup = n <= 2048
        q32 = torch.randn(1, H, n, d)
        k32 = torch.randn(1, H, n, d)
        v32 = torch.randn(1, H, n, d)
        do32 = torch.randn(1, H, n, d)
        for name, fn in impls:
            if name.endswith("-bf16"):
                q, k, v, do = (t.detach().to(torch.bfloat16) for t in (q32, k32, v32, do32))
            else:
                q, k, v, do = q32, k32, v32, do32
            for pass_name in args.passes:
                rec = {"impl": name, "pass": pass_name, "seq_len": n}
                need = MEM_FACTOR[pass_name] * H * n * n * 4
                if fn is None:
                    rec["skipped"] = "not available in torch %s" % version
                elif need > args.mem_budget_gb * GB:
                    rec["skipped"] = "needs ~%.3g GB > budget %.3g GB" % (need / GB, args.mem_budget_gb)
                else:
                    grad = pass_name == "fwd+bwd"
                    for t in (q, k, v):
                        t.requires_grad_(grad)
                        t.grad = None
                    secs, peak = measure(torch, fn, q, k, v, do, pass_name, n, repeat, warmup)
                    rec["seconds"] = secs
                    rec["peak_bytes"] = int(peak)
                    rec["gflops"] = FLOP_FACTOR[pass_name] * n * n * d * H / secs / 1e9
                results.append(rec)
                print(fmt_row(rec))
                sys.stdout.flush()
        del q, k, v, do, q32, k32, v32, do32

    if args.json:
        out = {"tool": "torch", "torch_version": version, "threads": args.threads,
               "heads": H, "head_dim": d, "sgemm_gflops": sgemm, "results": results}
        try:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
                f.write("\n")
        except OSError as e:
            die("cannot write %s: %s" % (args.json, e))
        print("wrote %s" % args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
