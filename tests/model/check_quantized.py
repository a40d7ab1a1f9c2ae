#!/usr/bin/env python3
"""Checks a file written by `longctx quantize` with gguf-py (an independent GGUF reader).

Usage: check_quantized.py SRC OUT TYPE      TYPE: f32, f16, bf16, q8_0, q4_0, q4_1

OUT must read with gguf.GGUFReader; hold the same tensors (names, order, shapes) and metadata
as SRC, except general.file_type (LLAMA_FTYPE of TYPE) and general.quantization_version; store
2-D tensors as TYPE (or F16 when rows are not whole blocks) and 1-D tensors as F32; and
dequantize (gguf.quants.dequantize) close to SRC's dequantization: per 32-element block within
half a quantization step (plus the step's own fp16 rounding), within fp16/bf16 rounding for
F16/BF16, exactly for F32. Prints one line per problem and a summary; exits 1 on any problem.
Called by tests/model/quantize_gguf_test.cc; runs standalone too.
"""
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

TYPES = {"f32": (T.F32, 0), "f16": (T.F16, 1), "bf16": (T.BF16, 32), "q8_0": (T.Q8_0, 7),
         "q4_0": (T.Q4_0, 2), "q4_1": (T.Q4_1, 3)}
CHANGED_KEYS = {"general.file_type", "general.quantization_version"}


def dequant(t):
    return quants.dequantize(np.asarray(t.data), t.tensor_type).astype(np.float64).reshape(-1)


def fields(reader):
    return {k: f for k, f in reader.fields.items() if not k.startswith("GGUF.")}


def bound(x, qtype):
    """Allowed |error| per element of x (float64, a multiple of 32 long) quantized to qtype."""
    if qtype == T.F32:
        return np.zeros_like(x)
    if qtype == T.F16:
        return np.maximum(np.abs(x) * 2.0 ** -11, 2.0 ** -25)
    if qtype == T.BF16:
        return np.abs(x) * 2.0 ** -8
    b = x.reshape(-1, 32)
    r16 = lambda v: v.astype(np.float32).astype(np.float16).astype(np.float64)
    mx, mn, amax = b.max(1, keepdims=True), b.min(1, keepdims=True), np.abs(b).max(1, keepdims=True)
    slack = 1e-6 * (np.abs(mx) + np.abs(mn)) + 1e-30
    if qtype == T.Q8_0:
        d = amax / 127
        e = d / 2 + 127 * np.abs(d - r16(d)) + slack
    elif qtype == T.Q4_0:
        d = amax / 8
        e = d + 8 * np.abs(d - r16(d)) + slack  # one full step where +7 clips
    else:
        d = (mx - mn) / 15
        e = d / 2 + 15 * np.abs(d - r16(d)) + np.abs(mn - r16(mn)) + slack
    return np.broadcast_to(e, b.shape).reshape(-1)


def main(argv):
    if len(argv) != 4 or argv[3] not in TYPES:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    src, out = gguf.GGUFReader(argv[1]), gguf.GGUFReader(argv[2])
    want_type, want_ftype = TYPES[argv[3]]
    problems = []
    fs, fo = fields(src), fields(out)
    if list(k for k in fs if k not in CHANGED_KEYS) != list(k for k in fo if k not in CHANGED_KEYS):
        problems.append("metadata keys differ")
    for k in fs:
        if k in fo and k not in CHANGED_KEYS and fs[k].contents() != fo[k].contents():
            problems.append(f"metadata {k} differs")
    ft = fo.get("general.file_type")
    if ft is None or ft.contents() != want_ftype:
        problems.append(f"general.file_type is {None if ft is None else ft.contents()}, expected {want_ftype}")
    ts, to = src.tensors, out.tensors
    if [t.name for t in ts] != [t.name for t in to]:
        problems.append("tensor names differ")
    worst = 0.0
    for a, b in zip(ts, to):
        if list(a.shape) != list(b.shape):
            problems.append(f"{a.name}: shape {list(b.shape)}, expected {list(a.shape)}")
            continue
        block = gguf.GGML_QUANT_SIZES[want_type][0]
        expect = T.F32 if len(a.shape) == 1 else (want_type if a.shape[0] % block == 0 else T.F16)
        if b.tensor_type != expect:
            problems.append(f"{a.name}: type {b.tensor_type.name}, expected {expect.name}")
            continue
        x, y = dequant(a), dequant(b)
        if a.tensor_type == b.tensor_type:
            ok = np.array_equal(np.asarray(a.data).view(np.uint8), np.asarray(b.data).view(np.uint8))
            if not ok:
                problems.append(f"{a.name}: same type {a.tensor_type.name} but different bytes")
            continue
        err = np.abs(x - y)
        lim = bound(x, b.tensor_type)
        if not np.all(err <= lim):
            i = int(np.argmax(err - lim))
            problems.append(f"{a.name}: element {i}: {x[i]} -> {y[i]}, error {err[i]:.3g} > {lim[i]:.3g}")
        worst = max(worst, float(np.max(err / np.maximum(np.abs(x).max(), 1e-30))))
    for p in problems[:20]:
        print("check_quantized: " + p)
    print(f"check_quantized: {argv[2]}: {len(to)} tensors, {len(fo)} keys, worst error / tensor max {worst:.3g}, "
          f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
