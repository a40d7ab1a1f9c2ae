#!/usr/bin/env python3
"""Scaling model of longctx's distributed training (docs/DISTRIBUTED.md).

Data parallel, weak scaling (each rank keeps its batch): a step takes the rank's compute time
T_c plus the all-reduce time backward did not hide. The gradients (G bytes, fp32) are summed in
buckets of b bytes; a bucket of s bytes costs 2 (N-1)/N s / B + 2 ceil(log2 N) alpha (bandwidth-
optimal reduce-scatter + all-gather, latency of a recursive-halving schedule) or, with the ring
schedule's latency, 2 (N-1) alpha. Every bucket but the last (the embeddings, complete only when
backward ends) overlaps backward, which takes `backward_share` of T_c.

Sequence parallel: one window of L positions over N ranks. Per layer, a rank sends its K/V share
(L/N rows x kv_dim x 2 x 4 bytes) N-1 times forward and N-1 times backward, and dK/dV N times.
A hop hides behind the attention of the pair in hand when that takes longer than the transfer.

Usage: tools/dist_scaling.py [--step-s 0.93] [--tokens-per-step 2048] [--grad-mib 55.4] ...
"""
import argparse
import math


def allreduce_s(nbytes, n, bw, alpha, ring_latency):
    if n == 1:
        return 0.0
    lat = 2 * (n - 1) * alpha if ring_latency else 2 * math.ceil(math.log2(n)) * alpha
    return 2 * (n - 1) / n * nbytes / bw + lat


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step-s", type=float, required=True, help="one rank's step time without communication (s)")
    ap.add_argument("--tokens-per-step", type=int, required=True, help="tokens of one rank's step")
    ap.add_argument("--grad-mib", type=float, required=True, help="gradient MiB all-reduced per step")
    ap.add_argument("--bucket-mib", type=float, default=8)
    ap.add_argument("--backward-share", type=float, default=0.6, help="share of the step in backward")
    ap.add_argument("--gbit", type=float, default=100, help="link bandwidth, Gb/s")
    ap.add_argument("--alpha-us", type=float, default=10, help="per-message latency, microseconds")
    ap.add_argument("--ranks", default="1,8,64,512")
    # Sequence parallel.
    ap.add_argument("--sp-len", type=int, default=65536, help="window length")
    ap.add_argument("--sp-kv-dim", type=int, default=256, help="kv_heads x head_dim")
    ap.add_argument("--sp-heads-dim", type=int, default=256, help="heads x head_dim")
    ap.add_argument("--sp-layers", type=int, default=4)
    ap.add_argument("--sp-gflops", type=float, default=150, help="attention GFLOP/s of one rank")
    a = ap.parse_args()
    bw = a.gbit * 1e9 / 8
    alpha = a.alpha_us * 1e-6
    G = a.grad_mib * 2**20
    b = min(a.bucket_mib * 2**20, G)
    nb = math.ceil(G / b)
    last = G - (nb - 1) * b
    print(f"data parallel: {a.grad_mib:.1f} MiB of gradients in {nb} buckets, step {a.step_s * 1e3:.0f} ms of compute "
          f"({a.tokens_per_step} tokens per rank), {a.gbit:.0f} Gb/s links, {a.alpha_us:.0f} us per message")
    print("| ranks | all-reduce per step | not hidden | tokens/s | efficiency | (ring latency: not hidden, efficiency) |")
    print("|---|---|---|---|---|---|")
    for n in (int(x) for x in a.ranks.split(",")):
        row = []
        for ring in (False, True):
            rest = (nb - 1) * allreduce_s(b, n, bw, alpha, ring)
            tail = allreduce_s(last, n, bw, alpha, ring)
            exposed = tail + max(0.0, rest - a.backward_share * a.step_s)
            row.append((rest + tail, exposed, n * a.tokens_per_step / (a.step_s + exposed), a.step_s / (a.step_s + exposed)))
        (t, e, tps, eff), (_, e2, _, eff2) = row
        print(f"| {n} | {t * 1e3:.1f} ms | {e * 1e3:.1f} ms | {tps:,.0f} | {100 * eff:.1f}% | {e2 * 1e3:.1f} ms, {100 * eff2:.1f}% |")

    print(f"\nsequence parallel: one window of {a.sp_len} positions, kv_dim {a.sp_kv_dim}, {a.sp_layers} layers, "
          f"attention at {a.sp_gflops:.0f} GFLOP/s per rank")
    print("| ranks | positions per rank | MiB sent per rank per step | per hop: transfer / attention | hidden |")
    print("|---|---|---|---|---|")
    for n in (int(x) for x in a.ranks.split(",")):
        if n < 2 or a.sp_len % (2 * n):
            continue
        share = a.sp_len / n * a.sp_kv_dim * 2 * 4  # K and V of a rank, bytes
        sent = a.sp_layers * ((n - 1) * share + (n - 1) * share + n * share)
        # Forward flops of one pair of shares (4 chunk pairs, about half visible under the causal
        # mask): QK^T and PV, 2 x 2 x rows x cols x heads_dim.
        rows = a.sp_len / n
        hop_flops = 2 * 2 * rows * rows * a.sp_heads_dim / 2
        hop_s = hop_flops / (a.sp_gflops * 1e9)
        xfer = share / bw + alpha
        print(f"| {n} | {a.sp_len // n} | {sent / 2**20:.0f} | {xfer * 1e3:.2f} ms / {hop_s * 1e3:.2f} ms | "
              f"{'yes' if xfer <= hop_s else 'no'} |")


if __name__ == "__main__":
    main()
