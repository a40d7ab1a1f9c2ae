#!/usr/bin/env python3
"""Cross-checks longctx's GGUF code against gguf-py, the reference Python implementation.

Needs `python3 -m pip install gguf numpy` (no network at run time). Two modes:

  python3 tests/io/make_gguf_fixture.py
      Writes tests/io/fixtures/gguf_py_fixture.gguf with gguf-py's GGUFWriter (every metadata
      type, string and numeric arrays, an F16, an F32 and a Q8_0 tensor) and
      tests/io/fixtures/gguf_py_fixture.json with the values this script put in, the tensor
      bytes, and the tensor file offsets that gguf-py's GGUFReader sees. tests/io/gguf_test.cc
      (GgufPyFixture.*) reads both and compares our reader against them.

  python3 tests/io/make_gguf_fixture.py --check-ours [tests/io/fixtures/longctx_writer_fixture.gguf]
      Reads a file written by our GgufWriter (the golden file that gguf_test.cc's
      WriterGolden.* test regenerates with LONGCTX_UPDATE_FIXTURES=1 and otherwise compares
      byte for byte) with gguf-py's GGUFReader and asserts every value below. Run it by hand
      after changing the writer; CTest does not, because gguf-py is not a build dependency.
"""
import json
import math
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT
from gguf import GGUFValueType as VT

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

TYPE_NAMES = {
    VT.UINT8: "u8", VT.INT8: "i8", VT.UINT16: "u16", VT.INT16: "i16", VT.UINT32: "u32",
    VT.INT32: "i32", VT.FLOAT32: "f32", VT.BOOL: "bool", VT.STRING: "string",
    VT.ARRAY: "array", VT.UINT64: "u64", VT.INT64: "i64", VT.FLOAT64: "f64",
}


def f32(x):
    """The double that a float32 holds, so JSON carries exactly what the file holds."""
    return float(np.float32(x))


def make_fixture():
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / "gguf_py_fixture.gguf"

    # (key, type, value) for scalars; (key, "array", elem type, values) for arrays. The writer
    # adds general.architecture first by itself.
    scalars = [
        ("general.name", VT.STRING, "tiny fixture \u2713"),
        ("test.u8", VT.UINT8, 200),
        ("test.i8", VT.INT8, -100),
        ("test.u16", VT.UINT16, 60000),
        ("test.i16", VT.INT16, -30000),
        ("test.u32", VT.UINT32, 4000000000),
        ("test.i32", VT.INT32, -2000000000),
        ("test.f32", VT.FLOAT32, 0.1),
        ("test.bool", VT.BOOL, True),
        ("test.bool_false", VT.BOOL, False),
        ("test.u64", VT.UINT64, 2**63 + 5),
        ("test.i64", VT.INT64, -(2**62) - 3),
        ("test.f64", VT.FLOAT64, 2.718281828459045),
        ("test.empty_string", VT.STRING, ""),
    ]
    arrays = [
        ("tokenizer.ggml.tokens", VT.STRING, ["<s>", "</s>", "hello", "w\u00f6rld", ""]),
        ("test.i32_array", VT.INT32, [1, -2, 3, 2147483647]),
        ("test.f32_array", VT.FLOAT32, [0.5, -1.25, 3.0, 0.1]),
        ("test.u8_array", VT.UINT8, [0, 255, 7]),
        ("test.i16_array", VT.INT16, [-5, 5, -32768]),
        ("test.u64_array", VT.UINT64, [2**64 - 1, 0]),
        ("test.i64_array", VT.INT64, [-(2**63), 42]),
        ("test.f64_array", VT.FLOAT64, [1e300, -0.25]),
        ("test.bool_array", VT.BOOL, [True, False, True]),
    ]

    w = gguf.GGUFWriter(str(path), "llama")
    for key, vt, value in scalars:
        w.add_key_value(key, value, vt)
    for key, vt, values in arrays:
        w.add_key_value(key, values, VT.ARRAY, sub_type=vt)

    # Tensors. An odd-sized F16 first, so the following offsets need padding.
    f16_values = np.array([1.0, -2.0, 0.5, 65504.0, -0.0], dtype=np.float16)
    f32_values = (np.arange(12, dtype=np.float32) * 0.5 - 2.0).reshape(3, 4)
    q_src = np.array([math.sin(0.37 * i) * (1 + i % 5) for i in range(128)],
                     dtype=np.float32).reshape(2, 64)
    q_bytes = gguf.quants.quantize(q_src, QT.Q8_0)
    q_deq = gguf.quants.dequantize(q_bytes, QT.Q8_0)
    w.add_tensor("output_norm.weight", f16_values)
    w.add_tensor("token_embd.weight", f32_values)
    w.add_tensor("blk.0.attn_q.weight", q_bytes, raw_dtype=QT.Q8_0)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # Expected tensor descriptions, computed here: GGUF dims are the numpy shape reversed, and
    # bytes follow the ggml block sizes.
    tensors = [
        {"name": "output_norm.weight", "type": int(QT.F16), "dims": [5], "n_bytes": 10,
         "bytes_hex": f16_values.tobytes().hex(),
         "values": [float(x) for x in f16_values]},
        {"name": "token_embd.weight", "type": int(QT.F32), "dims": [4, 3], "n_bytes": 48,
         "bytes_hex": f32_values.tobytes().hex(),
         "values": [float(x) for x in f32_values.ravel()]},
        {"name": "blk.0.attn_q.weight", "type": int(QT.Q8_0), "dims": [64, 2],
         "n_bytes": 2 * 2 * 34, "bytes_hex": q_bytes.tobytes().hex(),
         "values": [float(x) for x in q_src.ravel()],
         "dequantized": [float(x) for x in q_deq.ravel()]},
    ]

    # gguf-py's own reader supplies the file offsets (and must agree with everything above).
    r = gguf.GGUFReader(str(path))
    by_name = {t.name: t for t in r.tensors}
    for t in tensors:
        rt = by_name[t["name"]]
        assert [int(d) for d in rt.shape] == t["dims"], (t["name"], rt.shape)
        assert int(rt.tensor_type) == t["type"]
        assert int(rt.n_bytes) == t["n_bytes"]
        assert bytes(rt.data.tobytes()).hex() == t["bytes_hex"]
        t["file_offset"] = int(rt.data_offset)
        assert t["file_offset"] % 32 == 0

    metadata = [{"key": "general.architecture", "type": "string", "value": "llama"}]
    for key, vt, value in scalars:
        v = f32(value) if vt == VT.FLOAT32 else value
        metadata.append({"key": key, "type": TYPE_NAMES[vt], "value": v})
    for key, vt, values in arrays:
        vs = [f32(x) for x in values] if vt == VT.FLOAT32 else values
        metadata.append({"key": key, "type": "array", "elem_type": TYPE_NAMES[vt], "value": vs})
    read_keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert read_keys == [m["key"] for m in metadata], read_keys

    expected = {
        "version": 3,
        "alignment": 32,
        "data_offset": int(r.data_offset),
        "file_size": path.stat().st_size,
        "metadata": metadata,
        "tensors": tensors,
    }
    (FIXTURES / "gguf_py_fixture.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size} bytes) and gguf_py_fixture.json")


# What gguf_test.cc's make_golden_writer() puts in longctx_writer_fixture.gguf.
OURS_METADATA = [
    ("general.architecture", VT.STRING, "llama"),
    ("longctx.u8", VT.UINT8, 7),
    ("longctx.i8", VT.INT8, -7),
    ("longctx.u16", VT.UINT16, 65535),
    ("longctx.i16", VT.INT16, -32768),
    ("longctx.u32", VT.UINT32, 123456789),
    ("longctx.i32", VT.INT32, -123456789),
    ("longctx.u64", VT.UINT64, 2**64 - 1),
    ("longctx.i64", VT.INT64, -(2**63)),
    ("longctx.f32", VT.FLOAT32, 1.5),
    ("longctx.f64", VT.FLOAT64, -0.125),
    ("longctx.bool", VT.BOOL, True),
    ("longctx.string", VT.STRING, "h\u00e9llo\nworld"),
    ("tokenizer.ggml.tokens", (VT.ARRAY, VT.STRING), ["a", "", "\u00fcn\u00ef"]),
    ("tokenizer.ggml.token_type", (VT.ARRAY, VT.INT32), [1, -2, 2147483647]),
    ("tokenizer.ggml.scores", (VT.ARRAY, VT.FLOAT32), [0.25, -8.0]),
    ("longctx.u8_array", (VT.ARRAY, VT.UINT8), [1, 2, 3]),
    ("longctx.bool_array", (VT.ARRAY, VT.BOOL), [True, False]),
    ("longctx.f64_array", (VT.ARRAY, VT.FLOAT64), [1e300]),
    ("longctx.u64_array", (VT.ARRAY, VT.UINT64), [2**64 - 1, 0]),
]


def check_ours(path):
    r = gguf.GGUFReader(str(path))
    assert int(r.fields["GGUF.version"].contents()) == 3
    keys = [k for k in r.fields if not k.startswith("GGUF.")]
    assert keys == [k for k, _, _ in OURS_METADATA], keys
    for key, vt, value in OURS_METADATA:
        field = r.fields[key]
        types = list(vt) if isinstance(vt, tuple) else [vt]
        assert field.types == types, (key, field.types, types)
        got = field.contents()
        assert got == value, (key, got, value)

    tensors = {t.name: t for t in r.tensors}
    assert list(tensors) == ["a", "b", "c"], list(tensors)
    a, b, c = tensors["a"], tensors["b"], tensors["c"]
    assert a.tensor_type == QT.F32 and [int(d) for d in a.shape] == [3, 2]
    assert a.data.ravel().tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert b.tensor_type == QT.F16 and [int(d) for d in b.shape] == [5]
    assert b.data.tolist() == [1.0, -2.0, 0.5, 0.0, 65504.0]
    assert c.tensor_type == QT.Q8_0 and [int(d) for d in c.shape] == [32, 2]
    deq = gguf.quants.dequantize(c.data, QT.Q8_0).ravel().tolist()
    # Our test writes d = 0.5 (f16 0x3800) and q[i] = i - 16 in both rows.
    assert deq == [0.5 * (i - 16) for i in range(32)] * 2, deq
    for t in r.tensors:
        assert t.data_offset % 32 == 0
    print(f"{path}: gguf-py reads every value as expected")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--check-ours":
        check_ours(sys.argv[2] if len(sys.argv) > 2 else FIXTURES / "longctx_writer_fixture.gguf")
    else:
        make_fixture()
