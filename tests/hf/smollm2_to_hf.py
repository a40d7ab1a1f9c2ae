#!/usr/bin/env python3
"""SmolLM2-135M-Instruct as a Hugging Face model, rebuilt from its GGUF, and transformers' logits.

  PYTHONPATH=.pydeps/hf /usr/bin/python3 tests/hf/smollm2_to_hf.py MODEL.gguf OUT_DIR

Dequantizes every tensor with `gguf` (its own dequantizer), puts Q and K back in Hugging Face's
rotate-half row order (the inverse of llama.cpp's converter permutation), and saves the weights
as F16 with a LlamaConfig from the GGUF metadata, the tokenizer rebuilt as
tests/tokenizer/make_hf_golden.py does and SmolLM2's chat template: a real-size model in the
layout `save_pretrained` writes. Then OUT_DIR/ref.json gets the chat prompt, its ids from
transformers' tokenizer, and OUT_DIR/ref_logits.npy transformers' fp32 logits for those ids.
"""
import json
import os
import sys

import numpy as np
import torch
import gguf
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tokenizer"))
import make_hf_golden  # noqa: E402  (smollm2_from_gguf)

TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
            "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
            "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
            "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
NAMES = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
         "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
         "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def field(r, key):
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v.tobytes().decode() if f.types[0] == gguf.GGUFValueType.STRING else v[0].item()


def main():
    path, out = sys.argv[1], sys.argv[2]
    r = gguf.GGUFReader(path)
    heads, kv_heads = field(r, "llama.attention.head_count"), field(r, "llama.attention.head_count_kv")
    dim = field(r, "llama.embedding_length")
    cfg = LlamaConfig(vocab_size=len(r.fields["tokenizer.ggml.tokens"].data), hidden_size=dim,
                      intermediate_size=field(r, "llama.feed_forward_length"),
                      num_hidden_layers=field(r, "llama.block_count"), num_attention_heads=heads,
                      num_key_value_heads=kv_heads, max_position_embeddings=field(r, "llama.context_length"),
                      rms_norm_eps=field(r, "llama.attention.layer_norm_rms_epsilon"),
                      rope_theta=field(r, "llama.rope.freq_base"), tie_word_embeddings=True,
                      bos_token_id=1, eos_token_id=2, torch_dtype="float16")
    state = {}
    for t in r.tensors:
        w = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        w = w.reshape([int(d) for d in reversed(t.shape)])
        parts = t.name.split(".")
        if parts[0] == "blk":
            kind = parts[2]
            if kind in ("attn_q", "attn_k"):  # pairs (2i, 2i+1) -> rows (i, i + head_dim/2) per head
                n = heads if kind == "attn_q" else kv_heads
                w = w.reshape(n, -1, 2, w.shape[1]).transpose(0, 2, 1, 3).reshape(w.shape)
            name = f"model.layers.{parts[1]}.{NAMES[kind]}.weight"
        else:
            name = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight"}[t.name]
        state[name] = torch.from_numpy(np.ascontiguousarray(w)).to(torch.float16)
    cfg._attn_implementation = "eager"
    model = LlamaForCausalLM(cfg).eval()
    model.load_state_dict(state, strict=False)  # lm_head is tied to the token table
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    tk, _ = make_hf_golden.smollm2_from_gguf(path)
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>", unk_token="<|endoftext|>")
    fast.chat_template = TEMPLATE
    fast.save_pretrained(out)
    prompt = fast.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                      tokenize=False, add_generation_prompt=True)
    ids = fast(prompt, add_special_tokens=False)["input_ids"]
    ref = LlamaForCausalLM(cfg).eval()
    ref.load_state_dict({k: v.to(torch.float32) for k, v in state.items()}, strict=False)
    ref.tie_weights()
    with torch.no_grad():
        logits = ref(torch.tensor([ids])).logits[0].double().numpy()
    np.save(os.path.join(out, "ref_logits.npy"), logits)
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"prompt": prompt, "ids": ids}, f)
    print(f"{out}: {sum(p.numel() for p in ref.parameters())} parameters, prompt {len(ids)} tokens")


if __name__ == "__main__":
    main()
