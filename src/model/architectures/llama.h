// The llama architecture as GGUF describes it (llama.cpp's "llama": SmolLM2, TinyLlama, Llama 2
// and 3, Mistral): RMSNorm, SwiGLU, RoPE on adjacent pairs (the converter permutes HF's Q and K
// weights for that), GQA, no biases, tied output when the file has no output.weight, and a
// sliding window on every layer when llama.attention.sliding_window is set (Mistral).
#pragma once
#include "core/status.h"
#include "io/gguf.h"
#include "model/architectures/hf_config.h"
#include "model/config.h"
#include "model/weights.h"

namespace longctx::model::arch {

// The ModelConfig of a llama GGUF: one clear error for a missing key or an unsupported feature
// (partial rotary dimensions, Llama 3.1's rope frequency tensor, ...).
Expected<ModelConfig> llama_config(const io::GgufFile& f);

// The ModelConfig of a Hugging Face LlamaForCausalLM / MistralForCausalLM config.json
// (model_type "llama" or "mistral"): GQA, head_dim, rms_norm_eps, rope_theta, linear RoPE
// scaling, tie_word_embeddings, Mistral's sliding_window. Biases, activations other than silu
// and other RoPE scalings are refused by name.
Expected<ModelConfig> llama_config_hf(const HfConfig& hf);
// Hugging Face's tensor names (model.layers.N.self_attn.q_proj.weight, ...); Q and K rows are
// reordered from rotate-half to adjacent pairs per head.
WeightMap llama_hf_weights(const ModelConfig& c);

// Whether a longctx config is a llama model llama.cpp runs as one: RoPE (no scaling, linear, or
// NTK, which becomes the base it implies), RMSNorm, SwiGLU, no biases, full causal attention in
// every layer and the same heads / kv_heads / ff_dim everywhere, heads * head_dim == model_dim.
// The error names the first thing that is not.
Status llama_exportable(const ModelConfig& c);
// The llama.* keys (and general.architecture) of an exportable config.
void write_llama_keys(io::GgufWriter& w, const ModelConfig& c);

}  // namespace longctx::model::arch
