// The gpt2 architecture (GPT-2 and models shaped like it): learned absolute positions, pre-norm
// LayerNorm with biases, multi-head attention with one fused QKV projection, a GELU MLP (the
// tanh form, Hugging Face's "gelu_new"), biases on every linear layer, and the output tied to the
// token table unless the file holds one.
//   GGUF (llama.cpp's "gpt2"): gpt2.* keys; blk.N.attn_qkv.{weight,bias} is split into longctx's
//     Q, K and V by rows (in place: the three are row blocks of one mapped tensor), and export
//     fuses them again.
//   Hugging Face (GPT2LMHeadModel, model_type "gpt2"): [transformer.]h.N.attn.c_attn etc.; the
//     Conv1D matrices are stored [in, out] and are transposed on load.
#include "model/architectures/architecture.h"
#include "model/architectures/common.h"
#include "model/model.h"

#include <string>
#include <variant>

namespace longctx::model::arch {
namespace {

// GPT-2's fixed choices; the caller fills sizes and the output tie.
ModelConfig gpt2_base(int vocab, int dim, int layers, int heads, int ff, int ctx, float eps, bool tied) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = dim;
  c.ctx = ctx;
  c.norm = NormType::kLayerNorm;
  c.norm_eps = eps;
  c.mlp = MlpType::kGelu;
  c.bias = true;
  c.tied_embeddings = tied;
  c.pos = PosType::kLearned;
  c.set_uniform_layers(layers, LayerConfig{heads, heads, heads > 0 ? dim / heads : 0, ff});
  return c;
}

// Q, K, V as row blocks of the fused [3D, D] QKV matrix (and its [3D] bias).
bool qkv_part(const std::string& rest, int* part, std::string* suffix) {
  static const char* kParts[3] = {"attn_q.", "attn_k.", "attn_v."};
  for (int i = 0; i < 3; ++i)
    if (rest.rfind(kParts[i], 0) == 0) {
      *part = i;
      *suffix = rest.substr(7);
      return true;
    }
  return false;
}

Expected<ModelConfig> gpt2_config(const io::GgufFile& f) {
  auto u = [&](const char* key) { return gguf_size_key(f, key); };
  auto dim = u("gpt2.embedding_length"), layers = u("gpt2.block_count"), heads = u("gpt2.attention.head_count"),
       ff = u("gpt2.feed_forward_length"), ctx = u("gpt2.context_length");
  for (auto* e : {&dim, &layers, &heads, &ff, &ctx})
    if (!e->ok()) return e->status();
  if (*dim % *heads) return Status::Error("gpt2.embedding_length is not a multiple of the head count");
  if (f.find("gpt2.attention.head_count_kv")) {
    auto kv = u("gpt2.attention.head_count_kv");
    if (!kv.ok()) return kv.status();
    if (*kv != *heads) return Status::Error("gpt2.attention.head_count_kv differs from the head count (not GPT-2)");
  }
  auto eps = f.get_float("gpt2.attention.layer_norm_epsilon");
  if (!eps.ok()) return eps.status();
  int vocab = 0;
  auto toks = f.get_string_array("tokenizer.ggml.tokens");
  if (!toks.ok()) return toks.status();
  vocab = static_cast<int>(toks->size());
  if (const io::GgufTensorInfo* te = f.find_tensor("token_embd.weight"); te && te->dims.size() == 2)
    vocab = static_cast<int>(te->dims[1]);  // the table decides; the tokenizer must then agree
  ModelConfig c = gpt2_base(vocab, *dim, *layers, *heads, *ff, *ctx, static_cast<float>(*eps),
                            f.find_tensor("output.weight") == nullptr);
  LONGCTX_RETURN_IF_ERROR(c.validate());
  return c;
}

WeightMap gpt2_gguf_weights(const ModelConfig& c) {
  WeightMap m;
  const int64_t D = c.model_dim;
  m.source = [D](const std::string& p) {
    WeightSource s;
    int layer = -1, part = 0;
    std::string rest, suffix;
    if (split_block_name(p, &layer, &rest) && qkv_part(rest, &part, &suffix)) {
      s.names = {"blk." + std::to_string(layer) + ".attn_qkv." + suffix};
      s.row0 = part * D;
      s.rows = D;
      s.total_rows = 3 * D;
    } else {
      s.names = {p};
      s.leading_rows = p == "position_embd.weight";
    }
    return s;
  };
  return m;
}

Expected<ModelConfig> gpt2_config_hf(const HfConfig& hf) {
  auto dim = hf.get_int("n_embd"), layers = hf.get_int("n_layer", nullptr, 1, 1024), heads = hf.get_int("n_head"),
       vocab = hf.get_int("vocab_size");
  for (auto* e : {&dim, &layers, &heads, &vocab})
    if (!e->ok()) return e->status();
  auto ctx = hf.has("n_positions") ? hf.get_int("n_positions") : hf.get_int("n_ctx");
  if (!ctx.ok()) return ctx.status();
  const int64_t ff_default = 4 * *dim;
  auto ff = hf.get_int("n_inner", &ff_default);
  if (!ff.ok()) return ff.status();
  const std::string gelu_new = "gelu_new";
  auto act = hf.get_string("activation_function", &gelu_new);
  if (!act.ok()) return act.status();
  if (*act != "gelu_new" && *act != "gelu_pytorch_tanh")
    return hf.error("activation_function", "is '" + *act + "'; supported: gelu_new, gelu_pytorch_tanh (the tanh GELU)");
  auto by_layer = hf.get_bool("scale_attn_by_inverse_layer_idx", false);
  auto scale = hf.get_bool("scale_attn_weights", true);
  auto tied = hf.get_bool("tie_word_embeddings", true);
  for (auto* e : {&by_layer, &scale, &tied})
    if (!e->ok()) return e->status();
  if (*by_layer) return hf.error("scale_attn_by_inverse_layer_idx", "is true; not supported");
  if (!*scale) return hf.error("scale_attn_weights", "is false; not supported");
  const double eps_default = 1e-5;
  auto eps = hf.get_float("layer_norm_epsilon", &eps_default);
  if (!eps.ok()) return eps.status();
  if (*dim % *heads) return hf.error("n_embd", "is not a multiple of n_head");
  ModelConfig c = gpt2_base(static_cast<int>(*vocab), static_cast<int>(*dim), static_cast<int>(*layers),
                            static_cast<int>(*heads), static_cast<int>(*ff), static_cast<int>(*ctx),
                            static_cast<float>(*eps), *tied);
  if (Status st = c.validate(); !st.ok()) return st.Wrap(hf.path());
  return c;
}

WeightMap gpt2_hf_weights(const ModelConfig& c) {
  WeightMap m;
  const int64_t D = c.model_dim;
  // Names with and without the "transformer." prefix (save_pretrained writes it; the original
  // GPT-2 checkpoints lack it).
  auto both = [](const std::string& n) { return std::vector<std::string>{"transformer." + n, n}; };
  m.source = [D, both](const std::string& p) {
    WeightSource s;
    int layer = -1, part = 0;
    std::string rest, suffix;
    if (split_block_name(p, &layer, &rest)) {
      const std::string h = "h." + std::to_string(layer) + ".";
      const bool is_weight = rest.size() > 7 && rest.compare(rest.size() - 7, 7, ".weight") == 0;
      const std::string kind = is_weight ? "weight" : "bias";
      if (qkv_part(rest, &part, &suffix)) {
        s.names = both(h + "attn.c_attn." + kind);
        s.row0 = part * D;
        s.rows = D;
        s.total_rows = 3 * D;
      } else if (rest.rfind("attn_output.", 0) == 0) {
        s.names = both(h + "attn.c_proj." + kind);
      } else if (rest.rfind("ffn_up.", 0) == 0) {
        s.names = both(h + "mlp.c_fc." + kind);
      } else if (rest.rfind("ffn_down.", 0) == 0) {
        s.names = both(h + "mlp.c_proj." + kind);
      } else if (rest.rfind("attn_norm.", 0) == 0) {
        s.names = both(h + "ln_1." + kind);
      } else if (rest.rfind("ffn_norm.", 0) == 0) {
        s.names = both(h + "ln_2." + kind);
      }
      s.transpose = is_weight && rest.rfind("attn_norm.", 0) != 0 && rest.rfind("ffn_norm.", 0) != 0;
    } else if (p == "token_embd.weight") {
      s.names = both("wte.weight");
    } else if (p == "position_embd.weight") {
      s.names = both("wpe.weight");
      s.leading_rows = true;
    } else if (p == "output_norm.weight" || p == "output_norm.bias") {
      s.names = both("ln_f." + p.substr(12));
    } else if (p == "output.weight") {
      s.names = {"lm_head.weight"};
    }
    if (s.names.empty()) s.names = {p};
    return s;
  };
  const bool tied = c.tied_embeddings;
  m.ignore = [tied](const std::string& stored) {
    // The causal-mask buffers (attn.bias, attn.masked_bias) older versions saved.
    const auto ends = [&](const char* suf) {
      const std::string s(suf);
      return stored.size() >= s.size() && stored.compare(stored.size() - s.size(), s.size(), s) == 0;
    };
    return (tied && stored == "lm_head.weight") || ends(".attn.bias") || ends(".attn.masked_bias");
  };
  return m;
}

Status gpt2_exportable(const ModelConfig& c) {
  auto no = [](const std::string& what) { return Status::Error("not a gpt2 model: " + what); };
  if (c.pos != PosType::kLearned) return no(std::string("positions are ") + pos_name(c.pos) + ", gpt2 needs learned");
  if (c.norm != NormType::kLayerNorm) return no("rmsnorm; gpt2 needs layernorm");
  if (c.mlp != MlpType::kGelu) return no("swiglu MLP; gpt2 needs gelu");
  if (!c.bias) return no("the model has no biases; gpt2 has them everywhere");
  if (c.layers.at(0).kv_heads != c.layers.at(0).heads) return no("grouped-query attention; gpt2 has one K and V per head");
  return check_uniform_causal(c, "gpt2");
}

// Q, K and V of each layer fused into one [3D, D] attn_qkv tensor (and its [3D] bias): their rows
// concatenated, kept alive in `keep` until the writer has written them.
Status write_gpt2(io::GgufWriter& w, const Model& m, std::vector<std::vector<float>>* keep) {
  if (m.has_mapped_weights()) return Status::Error("a gpt2 export is written from fp32 weights (leave out --keep-types)");
  const ModelConfig& c = m.config();
  const LayerConfig& l0 = c.layers.at(0);
  w.set_string("general.architecture", "gpt2");
  w.set_u32("gpt2.context_length", c.ctx);
  w.set_u32("gpt2.embedding_length", c.model_dim);
  w.set_u32("gpt2.block_count", c.n_layers());
  w.set_u32("gpt2.feed_forward_length", l0.ff_dim);
  w.set_u32("gpt2.attention.head_count", l0.heads);
  w.set_f32("gpt2.attention.layer_norm_epsilon", c.norm_eps);
  for (const ParamTensor& t : m.layout().tensors()) {
    int layer = -1, part = 0;
    std::string rest, suffix;
    const bool qkv = split_block_name(t.name, &layer, &rest) && qkv_part(rest, &part, &suffix);
    if (qkv && part > 0) continue;  // written with its Q
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());  // GGUF: fastest dimension first
    if (!qkv) {
      LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, kF32, m.params() + t.offset, t.numel * sizeof(float)));
      continue;
    }
    const std::string p = "blk." + std::to_string(layer) + ".";
    std::vector<float> fused;
    for (const char* name : {"attn_q.", "attn_k.", "attn_v."}) {
      const ParamTensor* pt = m.layout().find(p + name + suffix);
      fused.insert(fused.end(), m.params() + pt->offset, m.params() + pt->offset + pt->numel);
    }
    dims.back() *= 3;  // rows (the slowest dimension; a bias has only that one)
    keep->push_back(std::move(fused));
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(p + "attn_qkv." + suffix, dims, kF32, keep->back().data(),
                                         keep->back().size() * sizeof(float)));
  }
  return Status::Ok();
}

}  // namespace

extern const Architecture kGpt2Architecture;
const Architecture kGpt2Architecture = {
    .name = "gpt2",
    .hf_model_types = {"gpt2"},
    .gguf_config = gpt2_config,
    .gguf_weights = gpt2_gguf_weights,
    .hf_config = gpt2_config_hf,
    .hf_weights = gpt2_hf_weights,
    .exportable = gpt2_exportable,
    .write = write_gpt2,
};

}  // namespace longctx::model::arch
