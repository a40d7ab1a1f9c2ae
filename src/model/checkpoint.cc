#include "model/checkpoint.h"

#include <cstring>
#include <set>

namespace longctx::model {
namespace {

constexpr const char* kArch = "longctx";
constexpr uint32_t kGgmlF32 = 0;

// Every longctx.* key this version understands. A checkpoint carrying another longctx.* key was
// written by a newer version with a feature we would silently ignore: refuse it.
const std::set<std::string>& known_keys() {
  static const std::set<std::string> k = {
      "longctx.context_length", "longctx.embedding_length", "longctx.block_count", "longctx.vocab_size",
      "longctx.norm", "longctx.norm_epsilon", "longctx.mlp", "longctx.bias", "longctx.tied_embeddings",
      "longctx.position", "longctx.rope.freq_base", "longctx.attention.head_count",
      "longctx.attention.head_count_kv", "longctx.attention.key_length", "longctx.feed_forward_length",
      "longctx.attention.pattern", "longctx.rope.scaling.type", "longctx.rope.scaling.factor",
      "longctx.rope.scaling.original_context_length", "longctx.rope.scaling.yarn_beta_fast",
      "longctx.rope.scaling.yarn_beta_slow", "longctx.rope.scaling.attn_factor"};
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
  std::vector<std::string> patterns;
  for (const auto& l : c.layers) {
    patterns.push_back(attention::format_pattern(l.pattern));
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
  LONGCTX_RETURN_IF_ERROR(c.validate());
  return c;
}

void write_tokenizer_keys(io::GgufWriter& w, const tokenizer::BpeTokenizer& tok) {
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", "longctx");
  w.set_string_array("tokenizer.ggml.tokens", tok.gguf_tokens());
  w.set_i32_array("tokenizer.ggml.token_type", tok.gguf_token_types());
  w.set_string_array("tokenizer.ggml.merges", tok.gguf_merges());
  w.set_u32("tokenizer.ggml.bos_token_id", tok.bos_id());
  w.set_u32("tokenizer.ggml.eos_token_id", tok.eos_id());
  w.set_u32("tokenizer.ggml.padding_token_id", tok.pad_id());
}

Status save_tokenizer(const std::string& path, const tokenizer::BpeTokenizer& tok) {
  io::GgufWriter w;
  w.set_string("general.type", "tokenizer");
  write_tokenizer_keys(w, tok);
  return w.write(path);
}

Expected<tokenizer::BpeTokenizer> read_tokenizer(const io::GgufFile& f) {
  auto model = f.get_string("tokenizer.ggml.model");
  if (!model.ok()) return model.status();
  if (*model != "gpt2") return Status::Error("tokenizer model '" + *model + "' is not supported (expected gpt2)");
  auto tokens = f.get_string_array("tokenizer.ggml.tokens");
  if (!tokens.ok()) return tokens.status();
  auto merges = f.get_string_array("tokenizer.ggml.merges");
  if (!merges.ok()) return merges.status();
  auto id = [&](const char* key) -> Expected<int32_t> {
    auto v = f.get_uint(key);
    if (!v.ok()) return v.status();
    if (*v >= tokens->size()) return Status::Error(std::string("key '") + key + "' is not a token id");
    return static_cast<int32_t>(*v);
  };
  auto bos = id("tokenizer.ggml.bos_token_id");
  if (!bos.ok()) return bos.status();
  auto eos = id("tokenizer.ggml.eos_token_id");
  if (!eos.ok()) return eos.status();
  auto pad = id("tokenizer.ggml.padding_token_id");
  if (!pad.ok()) return pad.status();
  return tokenizer::BpeTokenizer::from_gguf(*tokens, *merges, *bos, *eos, *pad);
}

Expected<tokenizer::BpeTokenizer> load_tokenizer(const std::string& path) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto t = read_tokenizer(*f);
  if (!t.ok()) return t.status().Wrap("tokenizer '" + path + "'");
  return t;
}

Status save_checkpoint(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok) {
  io::GgufWriter w;
  write_config_keys(w, model.config());
  write_tokenizer_keys(w, tok);
  for (const ParamTensor& t : model.layout().tensors()) {
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());  // GGUF: fastest dimension first
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, kGgmlF32, model.params() + t.offset, t.numel * sizeof(float)));
  }
  return w.write(path);
}

Expected<LoadedModel> load_checkpoint(const std::string& path) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto fail = [&](const Status& s) { return s.Wrap("checkpoint '" + path + "'"); };
  auto cfg = read_config(*f);
  if (!cfg.ok()) return fail(cfg.status());
  auto tok = read_tokenizer(*f);
  if (!tok.ok()) return fail(tok.status());
  if (tok->vocab_size() != cfg->vocab_size)
    return fail(Status::Error("tokenizer has " + std::to_string(tok->vocab_size()) + " tokens but the model " +
                              std::to_string(cfg->vocab_size)));
  LoadedModel out{std::make_unique<Model>(*cfg), std::move(*tok)};
  const ParamLayout& layout = out.model->layout();
  for (const auto& ti : f->tensors())
    if (!layout.find(ti.name)) return fail(Status::Error("unexpected tensor '" + ti.name + "'"));
  for (const ParamTensor& t : layout.tensors()) {
    const io::GgufTensorInfo* ti = f->find_tensor(t.name);
    if (!ti) return fail(Status::Error("tensor '" + t.name + "' is missing"));
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (ti->dims != dims) return fail(Status::Error("tensor '" + t.name + "' has a shape inconsistent with the config"));
    if (ti->type != kGgmlF32) return fail(Status::Error("tensor '" + t.name + "' is " + io::ggml_type_name(ti->type) +
                                                        ", checkpoints hold F32"));
    std::memcpy(out.model->params() + t.offset, ti->data, t.numel * sizeof(float));
  }
  return out;
}

}  // namespace longctx::model
