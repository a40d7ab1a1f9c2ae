// The llama architecture as GGUF describes it (llama.cpp's "llama": SmolLM2, TinyLlama, Llama 2
// and 3, Mistral): RMSNorm, SwiGLU, RoPE on adjacent pairs (the converter permutes HF's Q and K
// weights for that), GQA, no biases, tied output when the file has no output.weight, and a
// sliding window on every layer when llama.attention.sliding_window is set (Mistral).
#pragma once
#include "core/status.h"
#include "io/gguf.h"
#include "model/config.h"

namespace longctx::model::arch {

// The ModelConfig of a llama GGUF: one clear error for a missing key or an unsupported feature
// (partial rotary dimensions, Llama 3.1's rope frequency tensor, ...).
Expected<ModelConfig> llama_config(const io::GgufFile& f);

// Whether a longctx config is a llama model llama.cpp runs as one: RoPE (no scaling, linear, or
// NTK, which becomes the base it implies), RMSNorm, SwiGLU, no biases, full causal attention in
// every layer and the same heads / kv_heads / ff_dim everywhere, heads * head_dim == model_dim.
// The error names the first thing that is not.
Status llama_exportable(const ModelConfig& c);
// The llama.* keys (and general.architecture) of an exportable config.
void write_llama_keys(io::GgufWriter& w, const ModelConfig& c);

}  // namespace longctx::model::arch
