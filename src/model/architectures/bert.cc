// BERT encoders (llama.cpp's GGUF "bert"; Hugging Face's BertModel, model_type "bert", as
// sentence-transformers ships it: all-MiniLM-L6-v2 and friends): learned positions, token types
// (one segment: type 0), a LayerNorm after the embeddings, post-norm layers
// (x = LN(x + attention(x)), x = LN(x + FF(x))) with biases everywhere and GELU in its erf
// form, attention over every key, no output head. Pooling: sentence-transformers'
// 1_Pooling/config.json (mean, cls or last; none of those: cls) and its Normalize module
// (modules.json); the GGUF's bert.pooling_type. A GGUF keeps no normalize flag: llama.cpp
// normalises embeddings by default, so a GGUF with mean pooling loads normalising.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <variant>

#include "model/architectures/architecture.h"
#include "model/architectures/common.h"
#include "model/model.h"

namespace longctx::model::arch {
namespace {

// llama.cpp's pooling_type numbers.
constexpr uint32_t kGgufPoolNone = 0, kGgufPoolMean = 1, kGgufPoolCls = 2, kGgufPoolLast = 3;

ModelConfig bert_base(int vocab, int dim, int ctx, int layers, int heads, int ff, float eps, int types) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = dim;
  c.ctx = ctx;
  c.norm = NormType::kLayerNorm;
  c.norm_eps = eps;
  c.mlp = MlpType::kGeluErf;
  c.bias = true;
  c.tied_embeddings = false;
  c.pos = PosType::kLearned;
  c.encoder = true;
  c.token_types = types;
  c.embed_norm = true;
  LayerConfig layer{heads, heads, dim / heads, ff};
  layer.pattern = attention::Full{};
  layer.blocks = {{"attention", "post_norm"}, {"feed_forward", "post_norm"}};
  c.set_uniform_layers(layers, layer);
  return c;
}

Expected<ModelConfig> bert_config(const io::GgufFile& f) {
  auto u = [&](const char* key) { return gguf_size_key(f, key); };
  auto dim = u("bert.embedding_length"), layers = u("bert.block_count"), heads = u("bert.attention.head_count"),
       ff = u("bert.feed_forward_length"), ctx = u("bert.context_length");
  for (auto* e : {&dim, &layers, &heads, &ff, &ctx})
    if (!e->ok()) return e->status();
  if (*dim % *heads) return Status::Error("bert.embedding_length is not a multiple of the head count");
  if (f.find("bert.attention.causal")) {
    auto causal = f.get_bool("bert.attention.causal");
    if (!causal.ok()) return causal.status();
    if (*causal) return Status::Error("bert.attention.causal is true; a causal bert is not supported");
  }
  auto toks = f.get_string_array("tokenizer.ggml.tokens");
  if (!toks.ok()) return toks.status();
  float eps = 1e-12f;
  if (f.find("bert.attention.layer_norm_epsilon")) {
    auto e = f.get_float("bert.attention.layer_norm_epsilon");
    if (!e.ok()) return e.status();
    eps = static_cast<float>(*e);
  }
  int types = 2;
  if (f.find("tokenizer.ggml.token_type_count")) {
    auto t = u("tokenizer.ggml.token_type_count");
    if (!t.ok()) return t.status();
    types = *t;
  } else if (const io::GgufTensorInfo* t = f.find_tensor("token_types.weight")) {
    if (t->dims.size() == 2) types = static_cast<int>(t->dims[1]);
  }
  ModelConfig c = bert_base(static_cast<int>(toks->size()), *dim, *ctx, *layers, *heads, *ff, eps, types);
  c.pooling = Pooling::kCls;
  if (f.find("bert.pooling_type")) {
    auto p = f.get_uint("bert.pooling_type");
    if (!p.ok()) return p.status();
    switch (*p) {
      case kGgufPoolNone: c.pooling = Pooling::kNone; break;
      case kGgufPoolMean: c.pooling = Pooling::kMean; break;
      case kGgufPoolCls: c.pooling = Pooling::kCls; break;
      case kGgufPoolLast: c.pooling = Pooling::kLast; break;
      default:
        return Status::Error("bert.pooling_type " + std::to_string(*p) + " is not supported (0-3: none, mean, cls, last)");
    }
  }
  c.normalize = c.pooling != Pooling::kNone;
  LONGCTX_RETURN_IF_ERROR(c.validate());
  return c;
}

// sentence-transformers' files beside config.json: 1_Pooling/config.json and modules.json.
Status read_sentence_transformers(const std::string& dir, ModelConfig* c) {
  namespace fs = std::filesystem;
  auto read = [](const fs::path& p, nlohmann::json* out) -> Expected<bool> {
    std::error_code ec;
    if (!fs::exists(p, ec)) return false;
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    if (!in) return Status::Error(p.string() + ": cannot be read");
    *out = nlohmann::json::parse(ss.str(), nullptr, false);
    if (out->is_discarded()) return Status::Error(p.string() + ": not valid JSON");
    return true;
  };
  nlohmann::json modules, pooling;
  auto has_modules = read(fs::path(dir) / "modules.json", &modules);
  if (!has_modules.ok()) return has_modules.status();
  std::string pooling_dir = "1_Pooling";
  if (*has_modules) {
    if (!modules.is_array()) return Status::Error(dir + "/modules.json: expected a list of modules");
    for (const auto& m : modules) {
      if (!m.is_object() || !m.contains("type") || !m["type"].is_string()) continue;
      const std::string type = m["type"].get<std::string>();
      if (type == "sentence_transformers.models.Normalize") c->normalize = true;
      if (type == "sentence_transformers.models.Pooling" && m.contains("path") && m["path"].is_string())
        pooling_dir = m["path"].get<std::string>();
    }
  }
  auto has_pooling = read(fs::path(dir) / pooling_dir / "config.json", &pooling);
  if (!has_pooling.ok()) return has_pooling.status();
  if (!*has_pooling) return Status::Ok();
  const std::string where = (fs::path(dir) / pooling_dir / "config.json").string();
  if (!pooling.is_object()) return Status::Error(where + ": expected an object");
  auto on = [&](const char* key) { return pooling.contains(key) && pooling[key].is_boolean() && pooling[key].get<bool>(); };
  int modes = 0;
  if (on("pooling_mode_mean_tokens")) c->pooling = Pooling::kMean, ++modes;
  if (on("pooling_mode_cls_token")) c->pooling = Pooling::kCls, ++modes;
  if (on("pooling_mode_lasttoken")) c->pooling = Pooling::kLast, ++modes;
  for (const char* unsupported : {"pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                                  "pooling_mode_weightedmean_tokens"})
    if (on(unsupported)) return Status::Error(where + ": " + unsupported + " is not supported (mean, cls or last)");
  if (modes > 1) return Status::Error(where + ": more than one pooling mode is on (concatenated poolings are not supported)");
  return Status::Ok();
}

Expected<ModelConfig> bert_config_hf(const HfConfig& hf) {
  auto dim = hf.get_int("hidden_size"), layers = hf.get_int("num_hidden_layers", nullptr, 1, 1024),
       heads = hf.get_int("num_attention_heads"), ff = hf.get_int("intermediate_size"),
       ctx = hf.get_int("max_position_embeddings"), vocab = hf.get_int("vocab_size");
  for (auto* e : {&dim, &layers, &heads, &ff, &ctx, &vocab})
    if (!e->ok()) return e->status();
  const int64_t two = 2;
  auto types = hf.get_int("type_vocab_size", &two, 0, 1024);
  if (!types.ok()) return types.status();
  const std::string gelu = "gelu", absolute = "absolute";
  auto act = hf.get_string("hidden_act", &gelu);
  if (!act.ok()) return act.status();
  if (*act != "gelu") return hf.error("hidden_act", "is '" + *act + "'; longctx runs BERT with gelu (the erf form)");
  auto pos = hf.get_string("position_embedding_type", &absolute);
  if (!pos.ok()) return pos.status();
  if (*pos != "absolute") return hf.error("position_embedding_type", "is '" + *pos + "'; supported: absolute");
  if (*dim % *heads) return hf.error("hidden_size", "is not a multiple of num_attention_heads");
  const double eps_default = 1e-12;
  auto eps = hf.get_float("layer_norm_eps", &eps_default);
  if (!eps.ok()) return eps.status();
  ModelConfig c = bert_base(static_cast<int>(*vocab), static_cast<int>(*dim), static_cast<int>(*ctx),
                            static_cast<int>(*layers), static_cast<int>(*heads), static_cast<int>(*ff),
                            static_cast<float>(*eps), static_cast<int>(*types));
  c.pooling = Pooling::kCls;  // BERT's own summary token, unless sentence-transformers says otherwise
  const std::string dir = std::filesystem::path(hf.path()).parent_path().string();
  LONGCTX_RETURN_IF_ERROR(read_sentence_transformers(dir.empty() ? "." : dir, &c));
  if (Status st = c.validate(); !st.ok()) return st.Wrap(hf.path());
  return c;
}

WeightMap bert_hf_weights(const ModelConfig&) {
  WeightMap m;
  m.source = [](const std::string& p) {
    WeightSource s;
    std::string theirs;
    int layer = -1;
    std::string rest;
    if (split_block_name(p, &layer, &rest)) {
      static const std::pair<const char*, const char*> kBlock[] = {
          {"attn_q.", "attention.self.query."},         {"attn_k.", "attention.self.key."},
          {"attn_v.", "attention.self.value."},         {"attn_output.", "attention.output.dense."},
          {"attn_output_norm.", "attention.output.LayerNorm."}, {"ffn_up.", "intermediate.dense."},
          {"ffn_down.", "output.dense."},                {"layer_output_norm.", "output.LayerNorm."}};
      for (const auto& [ours, hf_name] : kBlock) {
        const std::string o = ours;
        if (rest.rfind(o, 0) == 0) theirs = "encoder.layer." + std::to_string(layer) + "." + hf_name + rest.substr(o.size());
      }
    } else if (p == "token_embd.weight") {
      theirs = "embeddings.word_embeddings.weight";
    } else if (p == "position_embd.weight") {
      theirs = "embeddings.position_embeddings.weight";
      s.leading_rows = true;
    } else if (p == "token_types.weight") {
      theirs = "embeddings.token_type_embeddings.weight";
    } else if (p.rfind("token_embd_norm.", 0) == 0) {
      theirs = "embeddings.LayerNorm." + p.substr(16);
    }
    if (theirs.empty()) {
      s.names = {p};
      return s;
    }
    // BertModel saves its names bare; BertFor* models under "bert."; old checkpoints call a
    // LayerNorm's weight and bias gamma and beta.
    s.names = {theirs, "bert." + theirs};
    const std::string ln = "LayerNorm.";
    if (const size_t at = theirs.find(ln); at != std::string::npos) {
      const std::string old = theirs.substr(0, at + ln.size()) + (theirs.substr(at + ln.size()) == "weight" ? "gamma" : "beta");
      s.names.push_back(old);
      s.names.push_back("bert." + old);
    }
    return s;
  };
  m.ignore = [](const std::string& stored) {
    // The position-id buffer, BERT's pooler (the [CLS] projection its pretraining head used) and
    // the pretraining heads of BertFor* checkpoints.
    return stored.find("position_ids") != std::string::npos || stored.find("pooler.") != std::string::npos ||
           stored.rfind("cls.", 0) == 0;
  };
  return m;
}

Status bert_exportable(const ModelConfig& c) {
  auto no = [](const std::string& what) { return Status::Error("not a bert model: " + what); };
  if (!c.encoder) return no("a decoder (bert is an encoder)");
  if (c.pos != PosType::kLearned) return no(std::string("positions are ") + pos_name(c.pos) + ", bert needs learned");
  if (c.norm != NormType::kLayerNorm || !c.bias || !c.embed_norm) return no("bert needs LayerNorm with biases after the embeddings");
  if (c.mlp != MlpType::kGeluErf) return no(std::string("the MLP is ") + mlp_name(c.mlp) + "; bert needs gelu_erf");
  const LayerConfig& l0 = c.layers.at(0);
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    if (lc.blocks != std::vector<layers::BlockSpec>{{"attention", "post_norm"}, {"feed_forward", "post_norm"}})
      return no("layer " + std::to_string(l) + " runs " + layers::format_blocks(lc.blocks));
    if (!std::holds_alternative<attention::Full>(lc.pattern)) return no("layer " + std::to_string(l) + " does not attend to every key");
    if (lc.heads != l0.heads || lc.kv_heads != lc.heads || lc.head_dim != l0.head_dim || lc.ff_dim != l0.ff_dim)
      return no("layer " + std::to_string(l) + " differs in shape from layer 0 or has grouped keys");
  }
  if (l0.heads * l0.head_dim != c.model_dim) return no("heads * head_dim != model_dim");
  return Status::Ok();
}

Status write_bert(io::GgufWriter& w, const Model& m, std::vector<std::vector<float>>*) {
  const ModelConfig& c = m.config();
  const LayerConfig& l0 = c.layers.at(0);
  w.set_string("general.architecture", "bert");
  w.set_u32("bert.context_length", c.ctx);
  w.set_u32("bert.embedding_length", c.model_dim);
  w.set_u32("bert.block_count", c.n_layers());
  w.set_u32("bert.feed_forward_length", l0.ff_dim);
  w.set_u32("bert.attention.head_count", l0.heads);
  w.set_f32("bert.attention.layer_norm_epsilon", c.norm_eps);
  w.set_bool("bert.attention.causal", false);
  uint32_t pool = kGgufPoolNone;
  if (c.pooling == Pooling::kMean) pool = kGgufPoolMean;
  if (c.pooling == Pooling::kCls) pool = kGgufPoolCls;
  if (c.pooling == Pooling::kLast) pool = kGgufPoolLast;
  w.set_u32("bert.pooling_type", pool);
  if (c.token_types > 0) w.set_u32("tokenizer.ggml.token_type_count", static_cast<uint32_t>(c.token_types));
  return write_tensors_as_named(w, m);
}

}  // namespace

extern const Architecture kBertArchitecture;
const Architecture kBertArchitecture = {
    .name = "bert",
    .hf_model_types = {"bert"},
    .gguf_config = bert_config,
    .gguf_weights = nullptr,  // llama.cpp's bert names are longctx's
    .hf_config = bert_config_hf,
    .hf_weights = bert_hf_weights,
    .exportable = bert_exportable,
    .write = write_bert,
};

}  // namespace longctx::model::arch
