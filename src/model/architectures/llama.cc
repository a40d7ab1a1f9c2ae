#include "model/architectures/llama.h"

#include <cmath>
#include <string>
#include <variant>

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

Status llama_exportable(const ModelConfig& c) {
  auto no = [](const std::string& what) { return Status::Error("not a llama model: " + what); };
  if (c.pos != PosType::kRope) return no(std::string("positions are ") + pos_name(c.pos) + ", llama needs rope");
  if (c.norm != NormType::kRmsNorm) return no("layernorm; llama needs rmsnorm");
  if (c.mlp != MlpType::kSwiglu) return no("gelu MLP; llama needs swiglu");
  if (c.bias) return no("the model has biases");
  if (c.rope_scaling.type == position::RopeScalingType::kYarn)
    return no("yarn RoPE scaling is exported only by longctx checkpoints (llama.cpp's yarn differs in detail)");
  const LayerConfig& l0 = c.layers.at(0);
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    if (!std::holds_alternative<attention::Causal>(lc.pattern))
      return no("layer " + std::to_string(l) + " attends with " + attention::format_pattern(lc.pattern) +
                "; llama attends causally to every key");
    if (lc.heads != l0.heads || lc.kv_heads != l0.kv_heads || lc.head_dim != l0.head_dim || lc.ff_dim != l0.ff_dim)
      return no("layer " + std::to_string(l) + " differs in shape from layer 0");
  }
  if (l0.heads * l0.head_dim != c.model_dim) return no("heads * head_dim != model_dim");
  return Status::Ok();
}

void write_llama_keys(io::GgufWriter& w, const ModelConfig& c) {
  const LayerConfig& l0 = c.layers.at(0);
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.context_length", c.ctx);
  w.set_u32("llama.embedding_length", c.model_dim);
  w.set_u32("llama.block_count", c.n_layers());
  w.set_u32("llama.feed_forward_length", l0.ff_dim);
  w.set_u32("llama.attention.head_count", l0.heads);
  w.set_u32("llama.attention.head_count_kv", l0.kv_heads);
  w.set_u32("llama.rope.dimension_count", l0.head_dim);
  w.set_u32("llama.vocab_size", c.vocab_size);
  w.set_f32("llama.attention.layer_norm_rms_epsilon", c.norm_eps);
  double theta = c.rope_theta;
  if (c.rope_scaling.type == position::RopeScalingType::kNtk && l0.head_dim > 2)  // as position/rope.cc
    theta *= std::pow(static_cast<double>(c.rope_scaling.factor), double(l0.head_dim) / (l0.head_dim - 2));
  w.set_f32("llama.rope.freq_base", static_cast<float>(theta));
  if (c.rope_scaling.type == position::RopeScalingType::kLinear) {
    w.set_string("llama.rope.scaling.type", "linear");
    w.set_f32("llama.rope.scaling.factor", c.rope_scaling.factor);
  }
}

}  // namespace longctx::model::arch
