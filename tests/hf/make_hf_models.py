#!/usr/bin/env python3
"""Small random Hugging Face models and their logits, the reference for tests/hf/compare_hf.py.

  PYTHONPATH=.pydeps/hf /usr/bin/python3 tests/hf/make_hf_models.py OUT_DIR

Runs under Debian's python3 (python3-torch) with `transformers` from scripts/setup_hf.sh. Writes
into OUT_DIR one directory per model, as `save_pretrained` writes it (config.json,
model.safetensors or shards + model.safetensors.index.json) plus tokenizer.json and
tokenizer_config.json, and for each model `ref_logits.npy` [n, vocab] (transformers' forward in
fp32 over the weights as stored: F16/BF16 models are rounded first) and `tokens.json`: the
token ids of TEXT (transformers' tokenizer) and of the token sequence the logits are for.
A manifest OUT_DIR/models.json lists them. Weights are drawn with a fixed seed, at scales that
make the logits far from uniform (the default 0.02 init would hide mistakes).
"""
import json
import os
import sys

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, MistralConfig,
                          MistralForCausalLM, PreTrainedTokenizerFast)

TEXT = ("In the beginning God created the heaven and the earth. And the earth was without form, and void; "
        "and darkness was upon the face of the deep. 1234 tokens, naïve café!")


def make_tokenizer(out):
    """A byte-level BPE (GPT-2 pre-tokenizer) trained on a few sentences, saved as the HF files."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [TEXT, "And God said, Let there be light: and there was light.",
              "The quick brown fox jumps over the lazy dog. 0123456789", "def f(x):\n    return x * 2\n"] * 4
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    fast.save_pretrained(out)
    return fast


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                fan_in = p.shape[1] if "c_" not in name else p.shape[0]  # GPT-2's Conv1D is [in, out]
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / fan_in ** 0.5))
            elif "norm" in name or "ln_" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.2 * torch.randn(p.shape, generator=g))


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    tok_dir = os.path.join(out_dir, "_tokenizer")
    fast = make_tokenizer(tok_dir)
    vocab = len(fast)
    text_ids = fast(TEXT)["input_ids"]
    seq = (text_ids * 3)[:40]  # 40 positions: longctx's prefill takes its dequant path from 32 rows
    common = dict(vocab_size=vocab, bos_token_id=0, eos_token_id=0)
    specs = [
        ("gpt2_f32", GPT2LMHeadModel, GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=64, **common),
         torch.float32, None),
        ("gpt2_f16_sharded", GPT2LMHeadModel,
         GPT2Config(n_embd=64, n_layer=3, n_head=2, n_inner=96, n_positions=48, layer_norm_epsilon=1e-5, **common),
         torch.float16, "60KB"),
        ("llama_gqa_f32", LlamaForCausalLM,
         LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
                     **common), torch.float32, None),
        ("llama_mqa_tied_bf16", LlamaForCausalLM,
         LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=1, max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500.0,
                     tie_word_embeddings=True, rope_scaling={"type": "linear", "factor": 2.0}, **common),
         torch.bfloat16, None),
        ("mistral_window_f16", MistralForCausalLM,
         MistralConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=64, sliding_window=8, rms_norm_eps=1e-5,
                       **common), torch.float16, None),
    ]
    manifest = []
    for i, (name, cls, cfg, dtype, shard) in enumerate(specs):
        torch.manual_seed(i)
        cfg._attn_implementation = "eager"
        model = cls(cfg).eval()
        randomize(model, 100 + i)
        model = model.to(dtype)  # the weights as they will be stored
        d = os.path.join(out_dir, name)
        kwargs = {"safe_serialization": True}
        if shard:
            kwargs["max_shard_size"] = shard
        model.save_pretrained(d, **kwargs)
        fast.save_pretrained(d)
        # The reference: a fresh fp32 model with the stored (rounded) weights. Converting the model
        # itself back would keep RoPE's inv_freq buffer rounded to 16 bits.
        ref = cls(cfg).eval()
        ref.load_state_dict({k: v.to(torch.float32) for k, v in model.state_dict().items()})
        with torch.no_grad():
            logits = ref(torch.tensor([seq])).logits[0].double().numpy()
        import numpy as np
        np.save(os.path.join(d, "ref_logits.npy"), logits)
        with open(os.path.join(d, "tokens.json"), "w") as f:
            json.dump({"text": TEXT, "text_ids": text_ids, "seq": seq}, f)
        manifest.append({"name": name, "dtype": str(dtype).replace("torch.", ""), "sharded": bool(shard),
                         "model_type": cfg.model_type})
        print(f"{name}: {sum(p.numel() for p in ref.parameters())} parameters, {dtype}")
    with open(os.path.join(out_dir, "models.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
