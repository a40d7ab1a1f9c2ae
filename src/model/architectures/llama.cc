#include "model/architectures/llama.h"

#include <string>

namespace longctx::model::arch {

Expected<ModelConfig> llama_config(const io::GgufFile& f) {
  auto u = [&](const char* key) -> Expected<int> {
    auto v = f.get_uint(key);
    if (!v.ok()) return v.status();
    if (*v < 1 || *v > (1u << 24)) return Status::Error(std::string("key '") + key + "' is out of range");
    return static_cast<int>(*v);
  };
  ModelConfig c;
  auto dim = u("llama.embedding_length"), layers = u("llama.block_count"), heads = u("llama.attention.head_count"),
       ff = u("llama.feed_forward_length"), ctx = u("llama.context_length");
  for (auto* e : {&dim, &layers, &heads, &ff, &ctx})
    if (!e->ok()) return e->status();
  int kv_heads = *heads;
  if (f.find("llama.attention.head_count_kv")) {
    auto kv = u("llama.attention.head_count_kv");
    if (!kv.ok()) return kv.status();
    kv_heads = *kv;
  }
  if (*dim % *heads) return Status::Error("llama.embedding_length is not a multiple of the head count");
  const int head_dim = *dim / *heads;
  if (f.find("llama.rope.dimension_count")) {
    auto rd = u("llama.rope.dimension_count");
    if (!rd.ok()) return rd.status();
    if (*rd != head_dim)
      return Status::Error("partial rotary embeddings (llama.rope.dimension_count " + std::to_string(*rd) +
                           " != head_dim " + std::to_string(head_dim) + ") are not supported");
  }
  if (f.find_tensor("rope_freqs.weight"))
    return Status::Error("per-dimension RoPE frequencies (rope_freqs.weight, Llama 3.1 style) are not supported");
  // The vocabulary is the tokenizer's when llama.vocab_size is absent.
  if (f.find("llama.vocab_size")) {
    auto v = u("llama.vocab_size");
    if (!v.ok()) return v.status();
    c.vocab_size = *v;
  } else {
    auto toks = f.get_string_array("tokenizer.ggml.tokens");
    if (!toks.ok()) return toks.status();
    c.vocab_size = static_cast<int>(toks->size());
  }
  c.model_dim = *dim;
  c.ctx = *ctx;
  c.norm = NormType::kRmsNorm;
  c.norm_eps = 1e-5f;
  if (f.find("llama.attention.layer_norm_rms_epsilon")) {
    auto eps = f.get_float("llama.attention.layer_norm_rms_epsilon");
    if (!eps.ok()) return eps.status();
    c.norm_eps = static_cast<float>(*eps);
  }
  c.mlp = MlpType::kSwiglu;
  c.bias = false;
  c.tied_embeddings = f.find_tensor("output.weight") == nullptr;
  c.pos = PosType::kRope;
  c.rope_theta = 10000.0f;
  if (f.find("llama.rope.freq_base")) {
    auto theta = f.get_float("llama.rope.freq_base");
    if (!theta.ok()) return theta.status();
    c.rope_theta = static_cast<float>(*theta);
  }
  if (f.find("llama.rope.scaling.type")) {
    auto type = f.get_string("llama.rope.scaling.type");
    if (!type.ok()) return type.status();
    if (*type == "linear" || *type == "yarn") {
      auto factor = f.get_float("llama.rope.scaling.factor");
      if (!factor.ok()) return factor.status();
      c.rope_scaling.type = *type == "linear" ? position::RopeScalingType::kLinear : position::RopeScalingType::kYarn;
      c.rope_scaling.factor = static_cast<float>(*factor);
      if (*type == "yarn") {
        auto orig = u("llama.rope.scaling.original_context_length");
        if (!orig.ok()) return orig.status();
        c.rope_scaling.original_ctx = *orig;
      }
    } else if (*type != "none") {
      return Status::Error("RoPE scaling '" + *type + "' is not supported (expected none, linear or yarn)");
    }
  }
  LayerConfig layer{*heads, kv_heads, head_dim, *ff};
  if (f.find("llama.attention.sliding_window")) {
    auto w = f.get_uint("llama.attention.sliding_window");
    if (!w.ok()) return w.status();
    if (*w > 0) layer.pattern = attention::SlidingWindow{static_cast<int64_t>(*w)};
  }
  c.set_uniform_layers(*layers, layer);
  LONGCTX_RETURN_IF_ERROR(c.validate());
  return c;
}

}  // namespace longctx::model::arch
