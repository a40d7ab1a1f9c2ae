// The llama architecture as GGUF describes it (llama.cpp's "llama": SmolLM2, TinyLlama, Llama 2
// and 3, Mistral) and as Hugging Face's LlamaForCausalLM / MistralForCausalLM config.json does:
// RMSNorm, SwiGLU, RoPE on adjacent pairs (the GGUF converter permutes HF's Q and K weights for
// that; loading HF weights does the same), GQA, no biases, tied output when the file has no
// output tensor, and a sliding window on every layer when the file sets one (Mistral).
#include "model/architectures/architecture.h"
#include "model/architectures/common.h"
#include "model/model.h"

#include <cmath>
#include <string>
#include <variant>

namespace longctx::model::arch {
namespace {

// The choices every llama-family model shares; the readers fill sizes, eps, theta, the tie and
// the layers.
ModelConfig llama_base(int vocab, int dim, int ctx, float eps, float theta, bool tied) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = dim;
  c.ctx = ctx;
  c.norm = NormType::kRmsNorm;
  c.norm_eps = eps;
  c.mlp = MlpType::kSwiglu;
  c.bias = false;
  c.tied_embeddings = tied;
  c.pos = PosType::kRope;
  c.rope_theta = theta;
  return c;
}


Expected<ModelConfig> llama_config(const io::GgufFile& f) {
  auto u = [&](const char* key) { return gguf_size_key(f, key); };
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
  int vocab = 0;
  if (f.find("llama.vocab_size")) {
    auto v = u("llama.vocab_size");
    if (!v.ok()) return v.status();
    vocab = *v;
  } else {
    auto toks = f.get_string_array("tokenizer.ggml.tokens");
    if (!toks.ok()) return toks.status();
    vocab = static_cast<int>(toks->size());
  }
  float eps = 1e-5f, theta = 10000.0f;
  if (f.find("llama.attention.layer_norm_rms_epsilon")) {
    auto e = f.get_float("llama.attention.layer_norm_rms_epsilon");
    if (!e.ok()) return e.status();
    eps = static_cast<float>(*e);
  }
  if (f.find("llama.rope.freq_base")) {
    auto t = f.get_float("llama.rope.freq_base");
    if (!t.ok()) return t.status();
    theta = static_cast<float>(*t);
  }
  ModelConfig c = llama_base(vocab, *dim, *ctx, eps, theta, f.find_tensor("output.weight") == nullptr);
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

Expected<ModelConfig> llama_config_hf(const HfConfig& hf) {
  auto model_type = hf.get_string("model_type");
  if (!model_type.ok()) return model_type.status();
  auto dim = hf.get_int("hidden_size"), layers = hf.get_int("num_hidden_layers", nullptr, 1, 1024),
       heads = hf.get_int("num_attention_heads"), ff = hf.get_int("intermediate_size"),
       ctx = hf.get_int("max_position_embeddings"), vocab = hf.get_int("vocab_size");
  for (auto* e : {&dim, &layers, &heads, &ff, &ctx, &vocab})
    if (!e->ok()) return e->status();
  auto kv = hf.get_int("num_key_value_heads", &*heads);
  if (!kv.ok()) return kv.status();
  const int64_t default_hd = *dim / *heads;
  auto hd = hf.get_int("head_dim", &default_hd);
  if (!hd.ok()) return hd.status();
  const std::string silu = "silu";
  auto act = hf.get_string("hidden_act", &silu);
  if (!act.ok()) return act.status();
  if (*act != "silu") return hf.error("hidden_act", "is '" + *act + "'; the llama architecture runs silu");
  for (const char* key : {"attention_bias", "mlp_bias"}) {
    auto b = hf.get_bool(key, false);
    if (!b.ok()) return b.status();
    if (*b) return hf.error(key, "is true; biases in a llama model are not supported");
  }
  const double eps_default = 1e-6, theta_default = 10000.0;
  auto eps = hf.get_float("rms_norm_eps", &eps_default);
  auto theta = hf.get_float("rope_theta", &theta_default);
  auto tied = hf.get_bool("tie_word_embeddings", false);
  if (!eps.ok()) return eps.status();
  if (!theta.ok()) return theta.status();
  if (!tied.ok()) return tied.status();
  ModelConfig c = llama_base(static_cast<int>(*vocab), static_cast<int>(*dim), static_cast<int>(*ctx),
                             static_cast<float>(*eps), static_cast<float>(*theta), *tied);
  if (hf.has("rope_scaling")) {
    auto rs = hf.get_object("rope_scaling");
    if (!rs.ok()) return rs.status();
    const std::string none = "default";
    auto type = rs->has("rope_type") ? rs->get_string("rope_type") : rs->get_string("type", &none);
    if (!type.ok()) return type.status();
    if (*type == "linear") {
      auto factor = rs->get_float("factor");
      if (!factor.ok()) return factor.status();
      c.rope_scaling.type = position::RopeScalingType::kLinear;
      c.rope_scaling.factor = static_cast<float>(*factor);
    } else if (*type != "default") {
      return hf.error("rope_scaling", "has type '" + *type + "'; supported: linear");
    }
  }
  LayerConfig layer{static_cast<int>(*heads), static_cast<int>(*kv), static_cast<int>(*hd), static_cast<int>(*ff)};
  if (*model_type == "mistral" && hf.has("sliding_window")) {
    // transformers' Mistral masks keys more than sliding_window positions back: a query sees
    // itself and the sliding_window keys before it (llama.cpp's GGUF key counts the query).
    auto w = hf.get_int("sliding_window");
    if (!w.ok()) return w.status();
    layer.pattern = attention::SlidingWindow{*w + 1};
  }
  c.set_uniform_layers(static_cast<int>(*layers), layer);
  if (Status st = c.validate(); !st.ok()) return st.Wrap(hf.path());
  return c;
}

WeightMap llama_hf_weights(const ModelConfig& c) {
  WeightMap m;
  const int heads = c.layers.at(0).heads, kv_heads = c.layers.at(0).kv_heads;
  m.source = [heads, kv_heads](const std::string& p) {
    WeightSource s;
    int layer = -1;
    std::string rest;
    if (split_block_name(p, &layer, &rest)) {
      static const std::pair<const char*, const char*> kBlock[] = {
          {"attn_norm.weight", "input_layernorm.weight"},   {"attn_q.weight", "self_attn.q_proj.weight"},
          {"attn_k.weight", "self_attn.k_proj.weight"},     {"attn_v.weight", "self_attn.v_proj.weight"},
          {"attn_output.weight", "self_attn.o_proj.weight"}, {"ffn_norm.weight", "post_attention_layernorm.weight"},
          {"ffn_gate.weight", "mlp.gate_proj.weight"},      {"ffn_up.weight", "mlp.up_proj.weight"},
          {"ffn_down.weight", "mlp.down_proj.weight"}};
      for (const auto& [ours, theirs] : kBlock)
        if (rest == ours) s.names = {"model.layers." + std::to_string(layer) + "." + theirs};
      if (rest == "attn_q.weight") s.rope_heads = heads;
      if (rest == "attn_k.weight") s.rope_heads = kv_heads;
    } else if (p == "token_embd.weight") {
      s.names = {"model.embed_tokens.weight"};
    } else if (p == "output_norm.weight") {
      s.names = {"model.norm.weight"};
    } else if (p == "output.weight") {
      s.names = {"lm_head.weight"};
    }
    if (s.names.empty()) s.names = {p};
    return s;
  };
  const bool tied = c.tied_embeddings;
  m.ignore = [tied](const std::string& stored) {
    return (tied && stored == "lm_head.weight") || stored.find("rotary_emb.inv_freq") != std::string::npos;
  };
  return m;
}

Status llama_exportable(const ModelConfig& c) {
  auto no = [](const std::string& what) { return Status::Error("not a llama model: " + what); };
  if (c.pos != PosType::kRope) return no(std::string("positions are ") + pos_name(c.pos) + ", llama needs rope");
  if (c.norm != NormType::kRmsNorm) return no("layernorm; llama needs rmsnorm");
  if (c.mlp != MlpType::kSwiglu) return no("gelu MLP; llama needs swiglu");
  if (c.bias) return no("the model has biases");
  if (c.rope_scaling.type == position::RopeScalingType::kYarn)
    return no("yarn RoPE scaling is exported only by longctx checkpoints (llama.cpp's yarn differs in detail)");
  return check_uniform_causal(c, "llama");
}

Status write_llama(io::GgufWriter& w, const Model& m, std::vector<std::vector<float>>* keep) {
  const ModelConfig& c = m.config();
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
  return write_tensors_as_named(w, m);
}

}  // namespace

extern const Architecture kLlamaArchitecture;
const Architecture kLlamaArchitecture = {
    .name = "llama",
    .hf_model_types = {"llama", "mistral"},
    .gguf_config = llama_config,
    .gguf_weights = nullptr,  // llama.cpp's names are longctx's
    .hf_config = llama_config_hf,
    .hf_weights = llama_hf_weights,
    .exportable = llama_exportable,
    .write = write_llama,
};

}  // namespace longctx::model::arch
