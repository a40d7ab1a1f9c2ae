#!/usr/bin/env python3
"""Seeds for fuzz/lora_adapter_fuzz.cc: LoRA adapters (llama.cpp's GGUF layout) for its model
(2 layers, model_dim 32, 4 heads of 8, 2 KV heads, ff 48), written with gguf-py:
  python3 fuzz/make_lora_seeds.py fuzz/corpus/lora"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".pydeps"))
import gguf  # noqa: E402

SHAPES = {"attn_q.weight": (32, 32), "attn_k.weight": (16, 32), "attn_v.weight": (16, 32),
          "attn_output.weight": (32, 32), "ffn_gate.weight": (48, 32), "ffn_up.weight": (48, 32),
          "ffn_down.weight": (32, 48)}


def write(path, targets, rank, dtype=np.float32, alpha=None):
    w = gguf.GGUFWriter(path, "llama")
    w.add_string("general.type", "adapter")
    w.add_string("adapter.type", "lora")
    if alpha is not None:
        w.add_float32("adapter.lora.alpha", alpha)
    rng = np.random.default_rng(rank)
    for layer in range(2):
        for t in targets:
            out, inp = SHAPES[t]
            name = f"blk.{layer}.{t}"
            w.add_tensor(name + ".lora_a", rng.normal(0, 0.1, (rank, inp)).astype(dtype))
            w.add_tensor(name + ".lora_b", rng.normal(0, 0.1, (out, rank)).astype(dtype))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write(os.path.join(out, "qv_r2.gguf"), ["attn_q.weight", "attn_v.weight"], 2, alpha=4.0)
    write(os.path.join(out, "all_r1_f16.gguf"), list(SHAPES), 1, dtype=np.float16)
    write(os.path.join(out, "down_r3.gguf"), ["ffn_down.weight"], 3)


if __name__ == "__main__":
    main()
