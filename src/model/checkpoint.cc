#include "model/checkpoint.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "quant/formats.h"

namespace longctx::model {
namespace {

constexpr const char* kArch = "longctx";

// Every longctx.* key this version understands. A checkpoint carrying another longctx.* key was
// written by a newer version with a feature we would silently ignore: refuse it.
const std::set<std::string>& known_keys() {
  static const std::set<std::string> k = {
      "longctx.context_length", "longctx.embedding_length", "longctx.block_count", "longctx.vocab_size",
      "longctx.norm", "longctx.norm_epsilon", "longctx.mlp", "longctx.bias", "longctx.tied_embeddings",
      "longctx.position", "longctx.rope.freq_base", "longctx.attention.head_count",
      "longctx.attention.head_count_kv", "longctx.attention.key_length", "longctx.feed_forward_length",
      "longctx.attention.pattern", "longctx.blocks", "longctx.rope.scaling.type", "longctx.rope.scaling.factor",
      "longctx.rope.scaling.original_context_length", "longctx.rope.scaling.yarn_beta_fast",
      "longctx.rope.scaling.yarn_beta_slow", "longctx.rope.scaling.attn_factor", "longctx.expansion.added_blocks",
      "longctx.encoder", "longctx.token_types", "longctx.embedding_norm", "longctx.pooling", "longctx.pooling.normalize"};
  return k;
}

// The longctx.rope.scaling.* keys; each is optional (absent: RopeScaling's default, so a
// checkpoint without them has no scaling). validate() then checks the values together.
Status read_rope_scaling(const io::GgufFile& f, position::RopeScaling* out) {
  position::RopeScaling rs;
  if (f.find("longctx.rope.scaling.type")) {
    auto type = f.get_string("longctx.rope.scaling.type");
    if (!type.ok()) return type.status();
    bool known = false;
    for (auto t : {position::RopeScalingType::kNone, position::RopeScalingType::kLinear,
                   position::RopeScalingType::kNtk, position::RopeScalingType::kYarn})
      if (*type == position::rope_scaling_name(t)) {
        rs.type = t;
        known = true;
      }
    if (!known)
      return Status::Error("key 'longctx.rope.scaling.type' is '" + *type +
                           "' (expected none, linear, ntk or yarn)");
  }
  auto f32 = [&](const char* key, float* dst) -> Status {
    if (!f.find(key)) return Status::Ok();
    auto v = f.get_float(key);
    if (!v.ok()) return v.status();
    *dst = static_cast<float>(*v);
    return Status::Ok();
  };
  LONGCTX_RETURN_IF_ERROR(f32("longctx.rope.scaling.factor", &rs.factor));
  LONGCTX_RETURN_IF_ERROR(f32("longctx.rope.scaling.yarn_beta_fast", &rs.beta_fast));
  LONGCTX_RETURN_IF_ERROR(f32("longctx.rope.scaling.yarn_beta_slow", &rs.beta_slow));
  LONGCTX_RETURN_IF_ERROR(f32("longctx.rope.scaling.attn_factor", &rs.attn_factor));
  if (f.find("longctx.rope.scaling.original_context_length")) {
    auto v = f.get_uint("longctx.rope.scaling.original_context_length");
    if (!v.ok()) return v.status();
    if (*v > (1u << 30)) return Status::Error("key 'longctx.rope.scaling.original_context_length' is out of range");
    rs.original_ctx = static_cast<int64_t>(*v);
  }
  *out = rs;
  return Status::Ok();
}

}  // namespace

void write_config_keys(io::GgufWriter& w, const ModelConfig& c) {
  w.set_string("general.architecture", kArch);
  w.set_u32("longctx.context_length", c.ctx);
  w.set_u32("longctx.embedding_length", c.model_dim);
  w.set_u32("longctx.block_count", c.n_layers());
  w.set_u32("longctx.vocab_size", c.vocab_size);
  w.set_string("longctx.norm", norm_name(c.norm));
  w.set_f32("longctx.norm_epsilon", c.norm_eps);
  w.set_string("longctx.mlp", mlp_name(c.mlp));
  w.set_bool("longctx.bias", c.bias);
  w.set_bool("longctx.tied_embeddings", c.tied_embeddings);
  w.set_string("longctx.position", pos_name(c.pos));
  w.set_f32("longctx.rope.freq_base", c.rope_theta);
  const position::RopeScaling& rs = c.rope_scaling;
  w.set_string("longctx.rope.scaling.type", position::rope_scaling_name(rs.type));
  w.set_f32("longctx.rope.scaling.factor", rs.factor);
  w.set_u32("longctx.rope.scaling.original_context_length", static_cast<uint32_t>(rs.original_ctx));
  w.set_f32("longctx.rope.scaling.yarn_beta_fast", rs.beta_fast);
  w.set_f32("longctx.rope.scaling.yarn_beta_slow", rs.beta_slow);
  w.set_f32("longctx.rope.scaling.attn_factor", rs.attn_factor);
  std::vector<int32_t> heads, kv, hd, ff;
  std::vector<std::string> patterns, blocks;
  for (const auto& l : c.layers) {
    patterns.push_back(attention::format_pattern(l.pattern));
    blocks.push_back(layers::format_blocks(l.blocks));
    heads.push_back(l.heads);
    kv.push_back(l.kv_heads);
    hd.push_back(l.head_dim);
    ff.push_back(l.ff_dim);
  }
  w.set_i32_array("longctx.attention.head_count", heads);
  w.set_i32_array("longctx.attention.head_count_kv", kv);
  w.set_i32_array("longctx.attention.key_length", hd);
  w.set_i32_array("longctx.feed_forward_length", ff);
  w.set_string_array("longctx.attention.pattern", patterns);
  w.set_string_array("longctx.blocks", blocks);
  if (!c.added_layers.empty())
    w.set_i32_array("longctx.expansion.added_blocks", std::vector<int32_t>(c.added_layers.begin(), c.added_layers.end()));
  // Encoder settings, only where set (decoder checkpoints stay as they were).
  if (c.encoder) w.set_bool("longctx.encoder", true);
  if (c.token_types > 0) w.set_u32("longctx.token_types", static_cast<uint32_t>(c.token_types));
  if (c.embed_norm) w.set_bool("longctx.embedding_norm", true);
  if (c.pooling != Pooling::kNone) w.set_string("longctx.pooling", pooling_name(c.pooling));
  if (c.normalize) w.set_bool("longctx.pooling.normalize", true);
}

Expected<ModelConfig> read_config(const io::GgufFile& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch != kArch) return Status::Error("architecture '" + *arch + "' is not a longctx checkpoint");
  for (const auto& kv : f.metadata())
    if (kv.key.rfind("longctx.", 0) == 0 && !known_keys().count(kv.key))
      return Status::Error("unknown required key '" + kv.key + "' (written by a newer longctx?)");
  ModelConfig c;
  auto u = [&](const char* key, int* out) -> Status {
    auto v = f.get_uint(key);
    if (!v.ok()) return v.status();
    if (*v > (1u << 30)) return Status::Error("key '" + std::string(key) + "' is out of range");
    *out = static_cast<int>(*v);
    return Status::Ok();
  };
  int n_layers = 0;
  LONGCTX_RETURN_IF_ERROR(u("longctx.context_length", &c.ctx));
  LONGCTX_RETURN_IF_ERROR(u("longctx.embedding_length", &c.model_dim));
  LONGCTX_RETURN_IF_ERROR(u("longctx.block_count", &n_layers));
  LONGCTX_RETURN_IF_ERROR(u("longctx.vocab_size", &c.vocab_size));
  auto s = [&](const char* key) { return f.get_string(key); };
  auto norm = s("longctx.norm");
  if (!norm.ok()) return norm.status();
  auto nt = parse_norm(*norm);
  if (!nt.ok()) return nt.status();
  c.norm = *nt;
  auto mlp = s("longctx.mlp");
  if (!mlp.ok()) return mlp.status();
  auto mt = parse_mlp(*mlp);
  if (!mt.ok()) return mt.status();
  c.mlp = *mt;
  auto pos = s("longctx.position");
  if (!pos.ok()) return pos.status();
  auto pt = parse_pos(*pos);
  if (!pt.ok()) return pt.status();
  c.pos = *pt;
  auto eps = f.get_float("longctx.norm_epsilon");
  if (!eps.ok()) return eps.status();
  c.norm_eps = static_cast<float>(*eps);
  auto theta = f.get_float("longctx.rope.freq_base");
  if (!theta.ok()) return theta.status();
  c.rope_theta = static_cast<float>(*theta);
  LONGCTX_RETURN_IF_ERROR(read_rope_scaling(f, &c.rope_scaling));
  auto bias = f.get_bool("longctx.bias");
  if (!bias.ok()) return bias.status();
  c.bias = *bias;
  auto tied = f.get_bool("longctx.tied_embeddings");
  if (!tied.ok()) return tied.status();
  c.tied_embeddings = *tied;
  if (n_layers < 1 || n_layers > 1024) return Status::Error("longctx.block_count out of range");
  const char* arrays[4] = {"longctx.attention.head_count", "longctx.attention.head_count_kv",
                           "longctx.attention.key_length", "longctx.feed_forward_length"};
  std::vector<int64_t> vals[4];
  for (int i = 0; i < 4; ++i) {
    auto a = f.get_int_array(arrays[i]);
    if (!a.ok()) return a.status();
    if (static_cast<int>(a->size()) != n_layers)
      return Status::Error(std::string("key '") + arrays[i] + "' has " + std::to_string(a->size()) +
                           " entries, expected block_count = " + std::to_string(n_layers));
    for (int64_t v : *a)
      if (v < 1 || v > (1 << 20)) return Status::Error(std::string("key '") + arrays[i] + "' holds an out-of-range value");
    vals[i] = std::move(*a);
  }
  for (int l = 0; l < n_layers; ++l)
    c.layers.push_back({int(vals[0][l]), int(vals[1][l]), int(vals[2][l]), int(vals[3][l])});
  if (f.find("longctx.attention.pattern")) {  // absent: causal everywhere (older checkpoints)
    auto pats = f.get_string_array("longctx.attention.pattern");
    if (!pats.ok()) return pats.status();
    if (static_cast<int>(pats->size()) != n_layers)
      return Status::Error("key 'longctx.attention.pattern' has " + std::to_string(pats->size()) +
                           " entries, expected block_count = " + std::to_string(n_layers));
    for (int l = 0; l < n_layers; ++l) {
      auto p = attention::parse_pattern((*pats)[l]);
      if (!p.ok()) return p.status();
      c.layers[l].pattern = *p;
    }
  }
  if (f.find("longctx.blocks")) {  // absent: attention then feed-forward (checkpoints before block lists)
    auto lists = f.get_string_array("longctx.blocks");
    if (!lists.ok()) return lists.status();
    if (static_cast<int>(lists->size()) != n_layers)
      return Status::Error("key 'longctx.blocks' has " + std::to_string(lists->size()) +
                           " entries, expected block_count = " + std::to_string(n_layers));
    for (int l = 0; l < n_layers; ++l) {
      auto b = layers::parse_blocks((*lists)[l]);
      if (!b.ok()) return b.status().Wrap("key 'longctx.blocks'");
      c.layers[l].blocks = std::move(*b);
    }
  }
  for (auto [key, out] : {std::pair<const char*, bool*>{"longctx.encoder", &c.encoder},
                          {"longctx.embedding_norm", &c.embed_norm}, {"longctx.pooling.normalize", &c.normalize}})
    if (f.find(key)) {
      auto b = f.get_bool(key);
      if (!b.ok()) return b.status();
      *out = *b;
    }
  if (f.find("longctx.token_types")) LONGCTX_RETURN_IF_ERROR(u("longctx.token_types", &c.token_types));
  if (f.find("longctx.pooling")) {
    auto p = s("longctx.pooling");
    if (!p.ok()) return p.status();
    auto pt = parse_pooling(*p);
    if (!pt.ok()) return pt.status();
    c.pooling = *pt;
  }
  if (f.find("longctx.expansion.added_blocks")) {
    auto a = f.get_int_array("longctx.expansion.added_blocks");
    if (!a.ok()) return a.status();
    for (int64_t v : *a) {
      if (v < 0 || v >= n_layers) return Status::Error("key 'longctx.expansion.added_blocks' names a layer past block_count");
      c.added_layers.push_back(static_cast<int>(v));
    }
  }
  LONGCTX_RETURN_IF_ERROR(c.validate());
  return c;
}

void write_tokenizer_keys(io::GgufWriter& w, const tokenizer::BpeTokenizer& tok) {
  const tokenizer::GgufVocab v = tok.gguf_vocab();
  w.set_string("tokenizer.ggml.model", v.model);
  if (v.model == "gpt2") w.set_string("tokenizer.ggml.pre", v.pre);
  w.set_string_array("tokenizer.ggml.tokens", v.tokens);
  w.set_i32_array("tokenizer.ggml.token_type", v.token_types);
  if (v.model == "gpt2") w.set_string_array("tokenizer.ggml.merges", v.merges);
  if (v.model == "llama") {
    w.set_f32_array("tokenizer.ggml.scores", v.scores);
    w.set_bool("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
  }
  const std::pair<const char*, int32_t> ids[] = {{"tokenizer.ggml.bos_token_id", v.bos},
                                                 {"tokenizer.ggml.eos_token_id", v.eos},
                                                 {"tokenizer.ggml.padding_token_id", v.pad},
                                                 {"tokenizer.ggml.unknown_token_id", v.unk}};
  for (const auto& [key, id] : ids)
    if (id >= 0) w.set_u32(key, static_cast<uint32_t>(id));
  w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
  if (v.add_eos || v.model == "bert") w.set_bool("tokenizer.ggml.add_eos_token", v.add_eos);
  if (v.model == "bert") {
    // llama.cpp's names for BERT's [CLS] and [SEP]; longctx's keys for what llama.cpp fixes
    // (tokenizer.longctx.*, not longctx.*: read_config refuses longctx.* keys it does not know).
    if (v.bos >= 0) w.set_u32("tokenizer.ggml.cls_token_id", static_cast<uint32_t>(v.bos));
    if (v.eos >= 0) w.set_u32("tokenizer.ggml.seperator_token_id", static_cast<uint32_t>(v.eos));
    w.set_bool("tokenizer.longctx.lowercase", v.lowercase);
    w.set_bool("tokenizer.longctx.strip_accents", v.strip_accents);
    w.set_u32("tokenizer.longctx.max_input_chars_per_word", static_cast<uint32_t>(v.max_input_chars_per_word));
  }
  if (!v.chat_template.empty()) w.set_string("tokenizer.chat_template", v.chat_template);
}

Status save_tokenizer(const std::string& path, const tokenizer::BpeTokenizer& tok) {
  io::GgufWriter w;
  w.set_string("general.type", "tokenizer");
  write_tokenizer_keys(w, tok);
  return w.write(path);
}

// Our checkpoints and real models (llama.cpp's conventions: a gpt2 vocabulary without a
// pre-tokenizer name gets "default"; Llama-3 names and SentencePiece vocabularies add BOS unless
// tokenizer.ggml.add_bos_token says otherwise). The tokenizer validates the rest. "bert"
// (WordPiece): [CLS]/[SEP] from tokenizer.ggml.cls_token_id / seperator_token_id where bos/eos are
// not given, add_bos and add_eos true, lowercase and strip_accents true unless
// tokenizer.longctx.* says otherwise (llama.cpp always lowercases).
Expected<tokenizer::BpeTokenizer> read_tokenizer(const io::GgufFile& f) {
  tokenizer::GgufVocab v;
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  if (*model != "gpt2" && *model != "llama" && *model != "bert")
    return Status::Error("tokenizer model '" + *model + "' is not supported (expected gpt2, llama or bert)");
  v.model = *model;
  const bool spm = v.model == "llama";
  const bool wpm = v.model == "bert";
  v.pre = "default";
  if (f.find("tokenizer.ggml.pre")) {
    auto pre = f.get_string("tokenizer.ggml.pre");
    if (!pre.ok()) return pre.status();
    v.pre = *pre;
  }
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  v.tokens = std::move(*tokens);
  if (!spm && !wpm) {
    auto merges = f.get_string_array("tokenizer.ggml.merges");
    if (!merges.ok()) return merges.status();
    v.merges = std::move(*merges);
  }
  if (f.find("tokenizer.ggml.scores")) {
    auto scores = f.get_float_array("tokenizer.ggml.scores");
    if (!scores.ok()) return scores.status();
    v.scores.assign(scores->begin(), scores->end());
  }
  if (f.find("tokenizer.ggml.token_type")) {
    auto types = f.get_int_array("tokenizer.ggml.token_type");
    if (!types.ok()) return types.status();
    for (int64_t t : *types) v.token_types.push_back(t < 0 || t > 1000 ? -1 : static_cast<int32_t>(t));
  }
  auto id = [&](const char* key, int32_t* out) -> Status {
    if (!f.find(key)) return Status::Ok();
    auto u = f.get_uint(key);
    if (!u.ok()) return u.status();
    if (*u >= v.tokens.size()) return Status::Error(std::string("key '") + key + "' is not a token id");
    *out = static_cast<int32_t>(*u);
    return Status::Ok();
  };
  if (spm) v.bos = 1, v.eos = 2, v.unk = 0;  // llama.cpp's defaults for SentencePiece vocabularies
  LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.bos_token_id", &v.bos));
  LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.eos_token_id", &v.eos));
  LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.padding_token_id", &v.pad));
  LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.unknown_token_id", &v.unk));
  if (wpm) {
    if (!f.find("tokenizer.ggml.bos_token_id")) LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.cls_token_id", &v.bos));
    if (!f.find("tokenizer.ggml.eos_token_id"))
      LONGCTX_RETURN_IF_ERROR(id("tokenizer.ggml.seperator_token_id", &v.eos));
  }
  for (int32_t* x : {&v.bos, &v.eos, &v.unk})
    if (*x >= static_cast<int64_t>(v.tokens.size())) *x = -1;  // a default past a tiny vocabulary
  v.add_bos = spm || wpm || v.pre == "llama3" || v.pre == "llama-v3" || v.pre == "llama-bpe" || v.pre == "falcon3";
  auto flag = [&](const char* key, bool* out) -> Status {
    if (!f.find(key)) return Status::Ok();
    auto b = f.get_bool(key);
    if (!b.ok()) return b.status();
    *out = *b;
    return Status::Ok();
  };
  LONGCTX_RETURN_IF_ERROR(flag("tokenizer.ggml.add_bos_token", &v.add_bos));
  LONGCTX_RETURN_IF_ERROR(flag("tokenizer.ggml.add_space_prefix", &v.add_space_prefix));
  v.add_eos = wpm;
  LONGCTX_RETURN_IF_ERROR(flag("tokenizer.ggml.add_eos_token", &v.add_eos));
  if (wpm) {
    LONGCTX_RETURN_IF_ERROR(flag("tokenizer.longctx.lowercase", &v.lowercase));
    v.strip_accents = v.lowercase;  // HF's rule for a BertNormalizer without strip_accents
    LONGCTX_RETURN_IF_ERROR(flag("tokenizer.longctx.strip_accents", &v.strip_accents));
    if (f.find("tokenizer.longctx.max_input_chars_per_word")) {
      auto m = f.get_uint("tokenizer.longctx.max_input_chars_per_word");
      if (!m.ok()) return m.status();
      if (*m < 1 || *m > (1u << 30))
        return Status::Error("key 'tokenizer.longctx.max_input_chars_per_word' is " + std::to_string(*m));
      v.max_input_chars_per_word = static_cast<int32_t>(*m);
    }
  }
  if (f.find("tokenizer.chat_template")) {
    auto tmpl = f.get_string("tokenizer.chat_template");
    if (!tmpl.ok()) return tmpl.status();
    v.chat_template = std::move(*tmpl);
  }
  return tokenizer::BpeTokenizer::from_gguf(v);
}

Expected<tokenizer::BpeTokenizer> load_tokenizer(const std::string& path) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto t = read_tokenizer(*f);
  if (!t.ok()) return t.status().Wrap("tokenizer '" + path + "'");
  return t;
}

Status add_model_tensors(io::GgufWriter& w, const Model& model) {
  const auto& ts = model.layout().tensors();
  for (size_t i = 0; i < ts.size(); ++i) {
    const ParamTensor& t = ts[i];
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());  // GGUF: fastest dimension first
    const kernels::QMatrix* q = model.mapped(static_cast<int>(i));
    if (!q) {
      LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, kF32, model.params() + t.offset, t.numel * sizeof(float)));
      continue;
    }
    // Read in place (a frozen matrix of a fine-tuned model): its bytes as they are.
    const int64_t rb = quant::row_bytes(q->type, q->cols);
    if (q->row_bytes != rb)
      return Status::Error("tensor '" + t.name + "' is read in place from rows that are not contiguous");
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, q->type, q->data, static_cast<size_t>(rb * q->rows)));
  }
  return Status::Ok();
}

Status save_checkpoint(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok) {
  if (model.config().lora.rank > 0)
    return Status::Error("cannot save '" + path + "' as a checkpoint: its LoRA tensors are saved as an adapter (model/lora.h)");
  if (model.adapter_count() > 0)
    return Status::Error("cannot save '" + path + "': adapters are applied (merge them with `longctx merge-lora`)");
  io::GgufWriter w;
  write_config_keys(w, model.config());
  write_tokenizer_keys(w, tok);
  LONGCTX_RETURN_IF_ERROR(add_model_tensors(w, model));
  return w.write(path);
}

Expected<LoadedModel> build_loaded(const TensorStore& store, const WeightMap& map, tokenizer::BpeTokenizer tok,
                                   const ModelConfig& cfg, bool map_matrices, const std::set<std::string>& fp32) {
  if (tok.vocab_size() != cfg.vocab_size)
    return Status::Error("tokenizer has " + std::to_string(tok.vocab_size()) + " tokens but the model " +
                         std::to_string(cfg.vocab_size));
  LoadedModel out{std::make_unique<Model>(cfg), std::move(tok)};
  std::vector<std::string> mapped;
  if (map_matrices) mapped = out.model->map_matrices(store, map, fp32);
  LONGCTX_RETURN_IF_ERROR(read_weights(store, map, *out.model, mapped));
  return out;
}

Expected<LoadedModel> load_checkpoint(const std::string& path) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto cfg = read_config(*f);
  auto tok = cfg.ok() ? read_tokenizer(*f) : Expected<tokenizer::BpeTokenizer>(cfg.status());
  Expected<LoadedModel> out =
      tok.ok() ? build_loaded(TensorStore::from_gguf(std::make_shared<const io::GgufFile>(std::move(*f))), WeightMap{},
                              std::move(*tok), *cfg, false)
               : Expected<LoadedModel>(tok.status());
  if (!out.ok()) return out.status().Wrap("checkpoint '" + path + "'");
  return out;
}

}  // namespace longctx::model
