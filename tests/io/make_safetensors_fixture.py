#!/usr/bin/env python3
"""Writes the safetensors fixtures that tests/io/safetensors_test.cc reads, with Hugging Face's
`safetensors` package (the reference writer) and numpy.

Needs `python3 -m pip install safetensors numpy` (no network at run time). Run from anywhere:

  python3 tests/io/make_safetensors_fixture.py

Writes
  tests/io/fixtures/st_fixture.safetensors   F32 [3, 4], F16 [5], BF16 [2, 3], I64 [4], a 0-d F32
                                             scalar, a zero-size F32 [0, 3], and __metadata__
  tests/io/fixtures/st_model/                a 2-shard model: model-0000{1,2}-of-00002.safetensors
                                             and model.safetensors.index.json
  tests/io/fixtures/st_fixture.json          the expected values (below)
  fuzz/corpus/safetensors/*.safetensors      fuzz seeds: the fixture, one shard, a file with every
                                             dtype, an empty file ("{}" header)

All files go through safetensors.serialize / serialize_file, the writer safetensors.numpy.save_file
uses, given raw little-endian bytes: numpy has no bfloat16, so BF16 tensors are passed as the
upper halves of float32 bit patterns (uint16) with dtype "bfloat16" - still the reference writer,
no header written by hand. The expected values in st_fixture.json are computed here by numpy from
the inputs, independently of the writer (BF16: the uint16 bits shifted into a float32), and the
script reads every file back with safetensors.deserialize and checks it against them.
"""
import json
from pathlib import Path

import numpy as np
import safetensors
from safetensors import TensorSpec

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
CORPUS = HERE.parent.parent / "fuzz" / "corpus" / "safetensors"

# safetensors header dtype -> the dtype name the Python binding's TensorSpec takes.
SPEC_DTYPE = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32",
    "F64": "float64", "I64": "int64", "U64": "uint64", "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
}


def bf16_bits(values):
    """float32 values -> their bfloat16 bits (truncation; the values below are exact in bf16)."""
    f = np.asarray(values, dtype=np.float32)
    bits = (f.view(np.uint32) >> 16).astype(np.uint16)
    assert np.array_equal((bits.astype(np.uint32) << 16).view(np.float32), f), "not exact in bf16"
    return bits


def bf16_values(bits):
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)


class Tensors:
    """name -> (header dtype, shape, little-endian numpy array holding the bytes)."""

    def __init__(self):
        self.items = {}

    def add(self, name, dtype, array, shape=None):
        a = np.ascontiguousarray(array)
        assert a.dtype.byteorder in ("<", "=", "|")
        self.items[name] = (dtype, list(a.shape if shape is None else shape), a)

    def specs(self):
        return {
            name: TensorSpec(dtype=SPEC_DTYPE[dtype], shape=shape, data_ptr=a.ctypes.data,
                             data_len=a.nbytes)
            for name, (dtype, shape, a) in self.items.items()
        }


def write(path, tensors, metadata=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors.serialize_file(tensors.specs(), str(path), metadata=metadata)
    path.chmod(0o644)  # the writer creates files 0600
    # Read back with the reference reader: every tensor's dtype, shape and bytes as given.
    raw = path.read_bytes()
    got = {name: view for name, view in safetensors.deserialize(raw)}
    assert set(got) == set(tensors.items), (sorted(got), sorted(tensors.items))
    for name, (dtype, shape, a) in tensors.items.items():
        assert got[name]["dtype"] in (dtype, SPEC_DTYPE[dtype]), (name, got[name]["dtype"])
        assert list(got[name]["shape"]) == shape, (name, got[name]["shape"])
        assert bytes(got[name]["data"]) == a.tobytes(), name
    return raw


def describe(raw, tensors):
    """Expected description of each tensor, in file order, from the header (parsed here by
    Python's json) and the values numpy computed."""
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
                     key=lambda kv: (kv[1]["data_offsets"][0], kv[1]["data_offsets"][1], kv[0]))
    out = []
    for name, entry in entries:
        dtype, shape, a = tensors.items[name]
        begin, end = entry["data_offsets"]
        assert entry["dtype"] == dtype and entry["shape"] == shape
        assert raw[8 + n + begin:8 + n + end] == a.tobytes()
        t = {"name": name, "dtype": dtype, "shape": shape, "n_elements": int(np.prod(shape)),
             "offset": begin, "n_bytes": end - begin, "bytes_hex": a.tobytes().hex()}
        if dtype == "BF16":
            t["values"] = [float(x) for x in bf16_values(a).ravel()]
        elif dtype in ("F32", "F16", "F64"):
            t["values"] = [float(x) for x in a.ravel()]
        else:
            t["ints"] = [int(x) for x in a.ravel()]
        out.append(t)
    return {"header_bytes": n, "file_size": len(raw), "metadata": header.get("__metadata__", {}),
            "tensors": out}


def main():
    FIXTURES.mkdir(parents=True, exist_ok=True)

    # The single-file fixture.
    t = Tensors()
    t.add("model.embed.weight", "F32", (np.arange(12, dtype=np.float32) * 0.25 - 1.0).reshape(3, 4))
    t.add("model.norm.weight", "F16", np.array([1.0, -2.0, 0.5, 65504.0, -0.0], dtype=np.float16))
    t.add("model.proj.weight", "BF16",
          bf16_bits([1.0, -0.5, 3.140625, 256.0, -0.0078125, 3.0 * 2**32]).reshape(2, 3))
    t.add("model.positions", "I64", np.array([0, 1, -7, 2**40], dtype=np.int64))
    t.add("model.scale", "F32", np.array(0.125, dtype=np.float32), shape=[])
    t.add("model.empty", "F32", np.zeros((0, 3), dtype=np.float32))
    metadata = {"format": "pt", "source": "longctx make_safetensors_fixture.py \u2713"}
    raw = write(FIXTURES / "st_fixture.safetensors", t, metadata)
    expected = describe(raw, t)
    assert expected["metadata"] == metadata
    assert expected["header_bytes"] % 8 == 0  # the writer pads the header with spaces

    # The sharded model.
    model_dir = FIXTURES / "st_model"
    shards = {
        "model-00001-of-00002.safetensors": [
            ("model.layers.0.w", "F32", np.array([[0.5, -1.0], [2.0, 4.0]], dtype=np.float32)),
            ("model.embed", "BF16", bf16_bits([0.25, -3.0, 1024.0, 0.0])),
        ],
        "model-00002-of-00002.safetensors": [
            ("model.layers.1.w", "F16", np.array([[1.0, 0.25], [-8.0, 3.5]], dtype=np.float16)),
            ("lm_head", "F32", np.array([7.0, -7.0, 0.0625], dtype=np.float32)),
        ],
    }
    weight_map, total_size, model_tensors = {}, 0, []
    for shard, items in shards.items():
        st = Tensors()
        for name, dtype, a in items:
            st.add(name, dtype, a)
            weight_map[name] = shard
            total_size += a.nbytes
        shard_raw = write(model_dir / shard, st, {"format": "pt"})
        for d in describe(shard_raw, st)["tensors"]:
            d["shard"] = shard
            model_tensors.append(d)
    index = {"metadata": {"total_size": total_size}, "weight_map": weight_map}
    (model_dir / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    expected["model"] = {"tensors": model_tensors}

    (FIXTURES / "st_fixture.json").write_text(json.dumps(expected, indent=1) + "\n")

    # Fuzz seeds.
    CORPUS.mkdir(parents=True, exist_ok=True)
    (CORPUS / "fixture.safetensors").write_bytes(raw)
    (CORPUS / "shard.safetensors").write_bytes(
        (model_dir / "model-00001-of-00002.safetensors").read_bytes())
    every = Tensors()
    widths = {"BOOL": np.uint8, "U8": np.uint8, "I8": np.int8, "F8_E4M3": np.uint8,
              "F8_E5M2": np.uint8, "I16": np.int16, "U16": np.uint16, "F16": np.float16,
              "BF16": np.uint16, "I32": np.int32, "U32": np.uint32, "F32": np.float32,
              "F64": np.float64, "I64": np.int64, "U64": np.uint64}
    for k, (dtype, np_type) in enumerate(widths.items()):
        every.add(dtype.lower(), dtype, np.arange(k % 3 + 1, dtype=np_type) % 2)
    write(CORPUS / "dtypes.safetensors", every, {"k": "v"})
    write(CORPUS / "empty.safetensors", Tensors())
    print(f"wrote {FIXTURES}/st_fixture.safetensors, st_fixture.json, st_model/, and {CORPUS}/")


if __name__ == "__main__":
    main()
