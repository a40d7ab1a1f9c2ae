// The gpt2 architecture (GPT-2 and models shaped like it): learned absolute positions, pre-norm
// LayerNorm with biases, multi-head attention with one fused QKV projection, a GELU MLP (the
// tanh form, Hugging Face's "gelu_new"), biases on every linear layer, and the output tied to the
// token table unless the file holds one.
//   GGUF (llama.cpp's "gpt2"): gpt2.* keys; blk.N.attn_qkv.{weight,bias} is split into longctx's
//     Q, K and V by rows (in place: the three are row blocks of one mapped tensor).
//   Hugging Face (GPT2LMHeadModel, model_type "gpt2"): [transformer.]h.N.attn.c_attn etc.; the
//     Conv1D matrices are stored [in, out] and are transposed on load.
#pragma once
#include "core/status.h"
#include "io/gguf.h"
#include "model/architectures/hf_config.h"
#include "model/config.h"
#include "model/weights.h"

namespace longctx::model::arch {

Expected<ModelConfig> gpt2_config(const io::GgufFile& f);
WeightMap gpt2_gguf_weights(const ModelConfig& c);

Expected<ModelConfig> gpt2_config_hf(const HfConfig& hf);
WeightMap gpt2_hf_weights(const ModelConfig& c);

// Whether a longctx config is a GPT-2 model: learned positions, LayerNorm, GELU, biases, full
// causal multi-head attention, one shape in every layer. The error names the first thing that is
// not.
Status gpt2_exportable(const ModelConfig& c);
// The gpt2.* keys (and general.architecture) of an exportable config.
void write_gpt2_keys(io::GgufWriter& w, const ModelConfig& c);

}  // namespace longctx::model::arch
