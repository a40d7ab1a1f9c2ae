#!/usr/bin/env python3
"""Writes the golden files of tests/quant/quant_test.cc from gguf-py (pip package `gguf`).

  golden/quant_rows.bin    float rows, their gguf.quants.quantize bytes for F16, BF16, Q8_0,
                           Q4_0, Q4_1 and gguf.quants.dequantize of those bytes; fp32 -> fp16 /
                           bf16 edge cases (ties, subnormals, overflow) as numpy converts them
  golden/kquant_blocks.bin random valid Q4_K / Q5_K / Q6_K blocks and their dequantization
  golden/model_rows.bin    a few rows of two tensors of models/SmolLM2-135M-Instruct.Q4_1.gguf
                           (Q8_0 token_embd, Q4_1 ffn_down): raw bytes and dequantization
                           (skipped, keeping the old file, if the model is not there)

File format (little-endian): "LCQG", u32 version 1, u32 record count, then per record
  u32 name length, name, u8 kind (0 f32, 1 u8, 2 i64), u64 element count, elements.

Usage: python3 tests/quant/make_quant_golden.py   (deterministic; rerun after changing it)
"""
import os
import struct
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
ROW_LEN = 256


def write(path, records):
    out = [b"LCQG", struct.pack("<II", 1, len(records))]
    for name, arr in records:
        arr = np.ascontiguousarray(arr)
        kind = {np.dtype(np.float32): 0, np.dtype(np.uint8): 1, np.dtype(np.int64): 2}[arr.dtype]
        nb = name.encode()
        out += [struct.pack("<I", len(nb)), nb, struct.pack("<BQ", kind, arr.size), arr.astype(arr.dtype.newbyteorder("<")).tobytes()]
    data = b"".join(out)
    with open(path, "wb") as f:
        f.write(data)
    print(f"wrote {os.path.relpath(path, ROOT)} ({len(data)} bytes, {len(records)} records)")


def as_bytes(q):
    return np.ascontiguousarray(q).view(np.uint8).reshape(-1)


def float_rows(rng):
    n = ROW_LEN
    rows = []
    rows.append(rng.standard_normal(n))                                    # 0 plain
    z = np.zeros(n); z[32:64] = -0.0; rows.append(z)                        # 1 zeros, one block of -0.0
    rows.append(np.full(n, 0.37))                                          # 2 all equal
    rows.append(rng.standard_normal(n) * 8000)                             # 3 large
    rows.append(rng.standard_normal(n) * 1e-3)                             # 4 small: fp16-subnormal scales
    rows.append(rng.standard_normal(n) * 1e-7)                             # 5 tiny: scales round to ~0
    rows.append(-(np.abs(rng.standard_normal(n)) + 0.5))                   # 6 negative only
    rows.append(rng.uniform(0.1, 2.0, n))                                  # 7 positive only
    ties = rng.integers(-16, 16, n) * 0.5                                  # 8 exact ties: d = 1
    for b in range(0, n, 64):
        ties[b] = 127.0                                                    #   Q8_0 d = 127/127
        ties[b + 32] = -8.0                                                #   Q4_0 d = -8/-8
        ties[b + 33:b + 64] = rng.integers(-16, 15, 31) * 0.5
    rows.append(ties)
    mag = rng.uniform(-1, 1, n) * 0.5                                      # 9 +a and -a both present
    for b in range(0, n, 32):
        i, j = rng.choice(32, 2, replace=False)
        s = 1.0 if (b // 32) % 2 else -1.0
        mag[b + i], mag[b + j] = s * 2.5, -s * 2.5
    rows.append(mag)
    scales = np.repeat(10.0 ** rng.uniform(-4, 3, n // 32), 32)           # 10 scale per block
    rows.append(rng.standard_normal(n) * scales)
    rows.append(rng.standard_normal(n) * 1.0 + 3.0)                        # 11 offset (Q4_1 min > 0)
    n_bound = len(rows)
    over = rng.standard_normal(n) * 3e4                                    # 12 past fp16's range
    over[[5, 40, 77, 200]] = [7e4, -1e5, 65520.0, -65519.0]
    rows.append(over)
    return np.array(rows, dtype=np.float32), n_bound


def fp16_edge_values(rng):
    # Midpoints between neighbouring fp16 values (exact in fp32) and one fp32 ulp either side,
    # for a spread of fp16 values, normal and subnormal, both signs.
    h = np.unique(np.concatenate([np.arange(0, 0x7c00, 193), np.arange(0, 40), np.arange(0x3ff - 8, 0x408),
                                  np.arange(0x7bf0, 0x7c00)])).astype(np.uint16)
    lo = h.view(np.float16).astype(np.float32)
    hi = (h + 1).view(np.float16).astype(np.float32)
    mid = ((lo.astype(np.float64) + hi.astype(np.float64)) / 2).astype(np.float32)
    vals = [lo, mid, np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(0))]
    special = np.array([0.0, -0.0, np.inf, -np.inf, 65504.0, 65519.996, 65520.0, 65536.0, 1e10,
                        2.0 ** -24, 2.0 ** -25, 2.0 ** -25 * (1 + 2.0 ** -23), 2.0 ** -26, 3 * 2.0 ** -26,
                        2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -24), 1e-30, 1e-40, 1e-45,
                        3.4028235e38, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11], dtype=np.float32)
    rand = (rng.standard_normal(256) * 10.0 ** rng.uniform(-9, 6, 256)).astype(np.float32)
    pos = np.concatenate(vals + [special, rand]).astype(np.float32)
    return np.concatenate([pos, -pos]).astype(np.float32)


def make_quant_rows(rng):
    rows, n_bound = float_rows(rng)
    recs = [("row_len", np.array([ROW_LEN], np.int64)), ("n_bound_rows", np.array([n_bound], np.int64)),
            ("rows", rows.reshape(-1))]
    for name, qt in [("F16", T.F16), ("BF16", T.BF16), ("Q8_0", T.Q8_0), ("Q4_0", T.Q4_0), ("Q4_1", T.Q4_1)]:
        with np.errstate(over="ignore", invalid="ignore"):
            q = quants.quantize(rows, qt)
            qb = as_bytes(q).reshape(rows.shape[0], -1)
            dq = quants.dequantize(qb, qt).astype(np.float32)
        recs += [(name + ".quant", qb.reshape(-1)), (name + ".dequant", dq.reshape(-1))]
    edge = fp16_edge_values(rng)
    with np.errstate(over="ignore"):
        recs += [("edge", edge), ("edge.F16", as_bytes(edge.astype(np.float16))),
                 ("edge.BF16", as_bytes(quants.quantize(edge, T.BF16)))]
    write(os.path.join(HERE, "golden", "quant_rows.bin"), recs)


def make_kquant_blocks(rng):
    recs = []
    for name, qt, fields in [("Q4_K", T.Q4_K, [0, 2]), ("Q5_K", T.Q5_K, [0, 2]), ("Q6_K", T.Q6_K, [208])]:
        block_size, type_size = gguf.GGML_QUANT_SIZES[qt]
        n_blocks = 4
        blocks = rng.integers(0, 256, (n_blocks, type_size), dtype=np.uint8)
        for i in range(n_blocks):
            for off in fields:  # d, dmin: finite fp16 scales, one of them subnormal
                v = np.float16(rng.uniform(-0.05, 0.05) if i != 3 else 3e-6)
                blocks[i, off:off + 2] = np.frombuffer(v.tobytes(), np.uint8)
        dq = quants.dequantize(blocks, qt).astype(np.float32)
        recs += [(name + ".blocks", blocks.reshape(-1)), (name + ".dequant", dq.reshape(-1))]
    write(os.path.join(HERE, "golden", "kquant_blocks.bin"), recs)


def make_model_rows():
    if not os.path.exists(MODEL):
        print(f"skipping golden/model_rows.bin: {MODEL} is missing (scripts/fetch_model.sh)")
        return
    reader = gguf.GGUFReader(MODEL)
    tensors = {t.name: t for t in reader.tensors}
    recs = []
    for name, rows in [("token_embd.weight", [0, 1, 1000, 49151]), ("blk.0.ffn_down.weight", [0, 5, 575])]:
        t = tensors[name]
        raw = np.asarray(t.data)[rows]  # [len(rows), bytes per row]
        dq = quants.dequantize(raw, t.tensor_type).astype(np.float32)
        recs += [(name + ".type", np.array([int(t.tensor_type)], np.int64)),
                 (name + ".rows", np.array(rows, np.int64)),
                 (name + ".bytes", raw.reshape(-1)), (name + ".dequant", dq.reshape(-1))]
    write(os.path.join(HERE, "golden", "model_rows.bin"), recs)


def main():
    os.makedirs(os.path.join(HERE, "golden"), exist_ok=True)
    from importlib.metadata import version
    print(f"gguf {version('gguf')}, numpy {np.__version__}")
    make_quant_rows(np.random.default_rng(1234))
    make_kquant_blocks(np.random.default_rng(5678))
    make_model_rows()
    return 0


if __name__ == "__main__":
    sys.exit(main())
