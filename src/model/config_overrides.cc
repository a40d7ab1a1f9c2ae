#include "model/config_overrides.h"

#include <functional>

namespace longctx::model {
namespace {

Status setting_error(const char* setting, const Status& st) { return st.Wrap(std::string("setting '") + setting + "'"); }

std::string layer_summary(const ModelConfig& c, const std::function<std::string(const LayerConfig&)>& f) {
  std::string first = f(c.layers.at(0));
  for (const auto& l : c.layers)
    if (f(l) != first) return "per layer";
  return first;
}

}  // namespace

Status apply_overrides(const ConfigOverrides& o, int yarn_original_ctx, ModelConfig* out) {
  ModelConfig c = *out;
  if (o.layers > 0) c.set_uniform_layers(o.layers, c.layers.at(0));
  if (!o.pos.empty()) {
    auto p = parse_pos(o.pos);
    if (!p.ok()) return setting_error("pos", p.status());
    c.pos = *p;
  }
  if (!o.norm.empty()) {
    auto p = parse_norm(o.norm);
    if (!p.ok()) return setting_error("norm", p.status());
    c.norm = *p;
  }
  if (!o.mlp.empty()) {
    auto p = parse_mlp(o.mlp);
    if (!p.ok()) return setting_error("mlp", p.status());
    c.mlp = *p;
  }
  if (o.kv_heads > 0)
    for (auto& l : c.layers) l.kv_heads = o.kv_heads;
  if (!o.attn.empty()) {
    auto p = attention::parse_pattern_list(o.attn);
    if (!p.ok()) return setting_error("attn", p.status());
    for (size_t l = 0; l < c.layers.size(); ++l) c.layers[l].pattern = (*p)[l % p->size()];
  }
  if (!o.rope_scaling.empty()) {
    auto rs = position::parse_rope_scaling(o.rope_scaling);
    if (!rs.ok()) return setting_error("rope_scaling", rs.status());
    c.rope_scaling = *rs;
    if (c.rope_scaling.type == position::RopeScalingType::kYarn && c.rope_scaling.original_ctx == 0)
      c.rope_scaling.original_ctx = yarn_original_ctx;
  }
  LONGCTX_RETURN_IF_ERROR(c.validate());
  *out = std::move(c);
  return Status::Ok();
}

Expected<ModelConfig> config_from_overrides(const ConfigOverrides& o, int vocab_size, int ctx) {
  auto c = preset(o.preset.empty() ? "tiny" : o.preset, vocab_size);
  if (!c.ok()) return setting_error("preset", c.status());
  c->vocab_size = vocab_size;
  c->ctx = ctx;  // the model is built for the length it trains on
  LONGCTX_RETURN_IF_ERROR(apply_overrides(o, ctx, &*c));
  return c;
}

Expected<std::vector<Conflict>> conflicts(const ConfigOverrides& o, const ModelConfig& c) {
  std::vector<Conflict> out;
  auto check = [&](const char* setting, const std::string& asked, const std::string& want, const std::string& has) {
    if (setting + (" " + want) != has) out.push_back({setting, asked, has});
  };
  auto heads = [](const LayerConfig& l) { return std::to_string(l.kv_heads); };
  auto yarn_orig = c.rope_scaling.type == position::RopeScalingType::kYarn ? static_cast<int>(c.rope_scaling.original_ctx)
                                                                            : c.ctx;
  // Each setting alone on top of the model: it agrees when it changes nothing.
  auto alone = [&](ConfigOverrides one) -> Expected<ModelConfig> {
    ModelConfig m = c;
    if (Status st = apply_overrides(one, yarn_orig, &m); !st.ok()) return st;
    return m;
  };
  ConfigOverrides one;
  if (!o.preset.empty()) {
    auto p = preset(o.preset, c.vocab_size);
    if (!p.ok()) return setting_error("preset", p.status());
    // The preset's shape; what the other settings given here set is checked alone, so the
    // checkpoint's own values stand in for those.
    ModelConfig want = *p;
    want.vocab_size = c.vocab_size;
    want.ctx = c.ctx;
    if (o.layers > 0) want.set_uniform_layers(c.n_layers(), want.layers.at(0));
    if (!o.pos.empty()) want.pos = c.pos;
    if (!o.norm.empty()) want.norm = c.norm;
    if (!o.mlp.empty()) want.mlp = c.mlp;
    for (int l = 0; o.kv_heads > 0 && l < want.n_layers() && l < c.n_layers(); ++l)
      want.layers[l].kv_heads = c.layers[l].kv_heads;
    const bool same_layers = want.n_layers() == c.n_layers();
    bool same = same_layers && want.model_dim == c.model_dim && want.norm == c.norm && want.mlp == c.mlp &&
                want.bias == c.bias && want.tied_embeddings == c.tied_embeddings && want.pos == c.pos;
    for (int l = 0; same && l < c.n_layers(); ++l) {
      const LayerConfig &a = want.layers[l], &b = c.layers[l];
      same = a.heads == b.heads && a.kv_heads == b.kv_heads && a.head_dim == b.head_dim && a.ff_dim == b.ff_dim &&
             a.blocks == b.blocks;
    }
    if (!same)
      out.push_back({"preset", o.preset,
                     std::to_string(c.n_layers()) + (c.n_layers() == 1 ? " layer" : " layers") + ", model_dim " + std::to_string(c.model_dim) + ", " +
                         layer_summary(c, [](const LayerConfig& l) {
                           return std::to_string(l.heads) + " heads, ff_dim " + std::to_string(l.ff_dim);
                         }) +
                         ", " + norm_name(c.norm) + ", " + mlp_name(c.mlp) + ", " + pos_name(c.pos)});
  }
  auto each = [&](const char* setting, const std::string& asked, ConfigOverrides o1,
                  const std::function<std::string(const ModelConfig&)>& describe) -> Status {
    auto m = alone(o1);
    if (!m.ok()) return m.status();
    check(setting, asked, describe(*m), std::string(setting) + " " + describe(c));
    return Status::Ok();
  };
  if (!o.pos.empty()) {
    one = {};
    one.pos = o.pos;
    LONGCTX_RETURN_IF_ERROR(each("pos", o.pos, one, [](const ModelConfig& m) { return pos_name(m.pos); }));
  }
  if (!o.norm.empty()) {
    one = {};
    one.norm = o.norm;
    LONGCTX_RETURN_IF_ERROR(each("norm", o.norm, one, [](const ModelConfig& m) { return norm_name(m.norm); }));
  }
  if (!o.mlp.empty()) {
    one = {};
    one.mlp = o.mlp;
    LONGCTX_RETURN_IF_ERROR(each("mlp", o.mlp, one, [](const ModelConfig& m) { return mlp_name(m.mlp); }));
  }
  if (o.kv_heads > 0) {
    one = {};
    one.kv_heads = o.kv_heads;
    LONGCTX_RETURN_IF_ERROR(each("kv_heads", std::to_string(o.kv_heads), one,
                                 [&](const ModelConfig& m) { return layer_summary(m, heads); }));
  }
  if (o.layers > 0) {
    one = {};
    one.layers = o.layers;
    LONGCTX_RETURN_IF_ERROR(
        each("layers", std::to_string(o.layers), one, [](const ModelConfig& m) { return std::to_string(m.n_layers()); }));
  }
  if (!o.attn.empty()) {
    one = {};
    one.attn = o.attn;
    LONGCTX_RETURN_IF_ERROR(each("attn", o.attn, one, pattern_summary));
  }
  if (!o.rope_scaling.empty()) {
    one = {};
    one.rope_scaling = o.rope_scaling;
    LONGCTX_RETURN_IF_ERROR(each("rope_scaling", o.rope_scaling, one, [](const ModelConfig& m) {
      return position::format_rope_scaling(m.rope_scaling);
    }));
  }
  return out;
}

std::string pattern_summary(const ModelConfig& c) {
  std::vector<std::string> names;
  for (const auto& l : c.layers) names.push_back(attention::format_pattern(l.pattern));
  size_t period = 1;
  for (; period < names.size(); ++period) {
    bool repeats = true;
    for (size_t i = period; i < names.size() && repeats; ++i) repeats = names[i] == names[i % period];
    if (repeats) break;
  }
  std::string out;
  for (size_t i = 0; i < period && i < names.size(); ++i) out += (i ? "," : "") + names[i];
  return out;
}

}  // namespace longctx::model
