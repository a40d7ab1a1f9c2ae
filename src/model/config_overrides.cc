#include "model/config_overrides.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <stdexcept>

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
  if (!o.colt5.empty()) {
    Status st = apply_colt5(o.colt5, &c);
    if (!st.ok()) return setting_error("colt5", st);
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

namespace {

// Whether c has o.preset's shape (layer count, dims, heads, norm, mlp, biases, tie, positions,
// blocks), whatever its vocabulary and context. What the other settings given in o set is checked
// on its own, so c's values stand in for those.
Expected<std::optional<Conflict>> preset_conflict(const ConfigOverrides& o, const ModelConfig& c) {
  auto p = preset(o.preset, c.vocab_size);
  if (!p.ok()) return setting_error("preset", p.status());
  ModelConfig want = *p;
  if (o.layers > 0) want.set_uniform_layers(c.n_layers(), want.layers.at(0));
  if (!o.pos.empty()) want.pos = c.pos;
  if (!o.norm.empty()) want.norm = c.norm;
  if (!o.mlp.empty()) want.mlp = c.mlp;
  for (int l = 0; o.kv_heads > 0 && l < want.n_layers() && l < c.n_layers(); ++l)
    want.layers[l].kv_heads = c.layers[l].kv_heads;
  for (int l = 0; !o.colt5.empty() && l < want.n_layers() && l < c.n_layers(); ++l)
    want.layers[l].blocks = c.layers[l].blocks;
  bool same = want.n_layers() == c.n_layers() && want.model_dim == c.model_dim && want.norm == c.norm &&
              want.mlp == c.mlp && want.bias == c.bias && want.tied_embeddings == c.tied_embeddings &&
              want.pos == c.pos;
  for (int l = 0; same && l < c.n_layers(); ++l) {
    const LayerConfig &a = want.layers[l], &b = c.layers[l];
    same = a.heads == b.heads && a.kv_heads == b.kv_heads && a.head_dim == b.head_dim && a.ff_dim == b.ff_dim &&
           a.blocks == b.blocks;
  }
  if (same) return std::optional<Conflict>();
  const std::string shape =
      std::to_string(c.n_layers()) + (c.n_layers() == 1 ? " layer" : " layers") + ", model_dim " +
      std::to_string(c.model_dim) + ", " +
      layer_summary(c, [](const LayerConfig& l) {
        return std::to_string(l.heads) + " heads, ff_dim " + std::to_string(l.ff_dim);
      }) +
      ", " + norm_name(c.norm) + ", " + mlp_name(c.mlp) + ", " + pos_name(c.pos);
  return std::optional<Conflict>(Conflict{"preset", o.preset, shape});
}

}  // namespace

Expected<std::vector<Conflict>> conflicts(const ConfigOverrides& o, const ModelConfig& c) {
  std::vector<Conflict> out;
  if (!o.preset.empty()) {
    auto p = preset_conflict(o, c);
    if (!p.ok()) return p.status();
    if (*p) out.push_back(**p);
  }
  // Every other setting given, alone on top of the model: it agrees when it changes nothing that
  // `describe` shows.
  using Describe = std::function<std::string(const ModelConfig&)>;
  struct Single {
    const char* setting;
    std::string asked;
    ConfigOverrides alone;
    Describe describe;
  };
  std::vector<Single> singles;
  auto given = [&](const char* setting, std::string asked, auto set, Describe describe) {
    ConfigOverrides alone;
    set(alone);
    singles.push_back({setting, std::move(asked), alone, std::move(describe)});
  };
  if (!o.pos.empty())
    given("pos", o.pos, [&](ConfigOverrides& a) { a.pos = o.pos; }, [](const ModelConfig& m) { return pos_name(m.pos); });
  if (!o.norm.empty())
    given("norm", o.norm, [&](ConfigOverrides& a) { a.norm = o.norm; },
          [](const ModelConfig& m) { return norm_name(m.norm); });
  if (!o.mlp.empty())
    given("mlp", o.mlp, [&](ConfigOverrides& a) { a.mlp = o.mlp; }, [](const ModelConfig& m) { return mlp_name(m.mlp); });
  if (o.kv_heads > 0)
    given("kv_heads", std::to_string(o.kv_heads), [&](ConfigOverrides& a) { a.kv_heads = o.kv_heads; },
          [](const ModelConfig& m) {
            return layer_summary(m, [](const LayerConfig& l) { return std::to_string(l.kv_heads); });
          });
  if (o.layers > 0)
    given("layers", std::to_string(o.layers), [&](ConfigOverrides& a) { a.layers = o.layers; },
          [](const ModelConfig& m) { return std::to_string(m.n_layers()); });
  if (!o.attn.empty()) given("attn", o.attn, [&](ConfigOverrides& a) { a.attn = o.attn; }, pattern_summary);
  if (!o.colt5.empty())
    given("colt5", o.colt5, [&](ConfigOverrides& a) { a.colt5 = o.colt5; }, blocks_summary);
  if (!o.rope_scaling.empty())
    given("rope_scaling", o.rope_scaling, [&](ConfigOverrides& a) { a.rope_scaling = o.rope_scaling; },
          [](const ModelConfig& m) { return position::format_rope_scaling(m.rope_scaling); });
  // A yarn scaling given without ORIG keeps the model's own original context.
  const int yarn_orig = c.rope_scaling.type == position::RopeScalingType::kYarn
                            ? static_cast<int>(c.rope_scaling.original_ctx)
                            : c.ctx;
  for (const Single& s : singles) {
    ModelConfig m = c;
    LONGCTX_RETURN_IF_ERROR(apply_overrides(s.alone, yarn_orig, &m));
    const std::string has = s.describe(c);
    if (s.describe(m) != has) out.push_back({s.setting, s.asked, std::string(s.setting) + " " + has});
  }
  return out;
}

Status apply_colt5(const std::string& spec, ModelConfig* out) {
  ModelConfig c = *out;
  size_t start = 0;
  bool any = false;
  while (start <= spec.size()) {
    size_t end = spec.find(';', start);
    if (end == std::string::npos) end = spec.size();
    const std::string part = spec.substr(start, end - start);
    start = end + 1;
    if (part.empty()) continue;
    const size_t eq = part.find('=');
    const std::string name = part.substr(0, eq);
    if (name != "ffn" && name != "attn") return Status::Error("unknown part '" + name + "' (known: ffn, attn)");
    const bool ffn = name == "ffn";
    const std::string dense = ffn ? "feed_forward" : "attention", routed = ffn ? "routed_feed_forward" : "routed_attention";
    // The flag writes key:value (its '=' names the part); block arguments are key=value.
    std::string args = eq == std::string::npos ? "" : part.substr(eq + 1);
    std::replace(args.begin(), args.end(), ':', '=');
    // layers=A-B (or layers=N): only those layers (counted from 0); the rest of args is the block's.
    int64_t first = 0, last = c.n_layers() - 1;
    {
      std::string kept;
      size_t from = 0;
      while (from <= args.size()) {
        size_t comma = args.find(',', from);
        if (comma == std::string::npos) comma = args.size();
        const std::string item = args.substr(from, comma - from);
        from = comma + 1;
        if (item.rfind("layers=", 0) != 0) {
          if (!item.empty()) kept += (kept.empty() ? "" : ",") + item;
          continue;
        }
        const std::string range = item.substr(7);
        const size_t dash = range.find('-');
        try {
          size_t u1 = 0, u2 = 0;
          first = std::stoll(range.substr(0, dash), &u1);
          last = dash == std::string::npos ? first : std::stoll(range.substr(dash + 1), &u2);
          if (u1 != (dash == std::string::npos ? range.size() : dash) ||
              (dash != std::string::npos && u2 != range.size() - dash - 1))
            throw std::invalid_argument(range);
        } catch (const std::exception&) {
          return Status::Error(name + ": layers '" + range + "' is not N or A-B");
        }
        if (first < 0 || last < first || last >= c.n_layers())
          return Status::Error(name + ": layers " + range + " is outside 0-" + std::to_string(c.n_layers() - 1));
      }
      args = kept;
    }
    for (int64_t li = first; li <= last; ++li) {
      auto& l = c.layers[li];
      bool found = false;
      for (auto& b : l.blocks)
        if (b.kind == dense || b.kind == routed) {
          if (b.kind == dense && !b.args.empty())
            return Status::Error(name + ": a post-norm " + dense + " block cannot be routed");
          b = {routed, args};
          found = true;
        }
      if (!found) return Status::Error(name + ": layer " + std::to_string(li) + " has no " + dense + " block to route");
    }
    any = true;
  }
  if (!any) return Status::Error("'" + spec + "' names no part (write ffn=light:256,heavy:2048,route:1/16;attn=window:128,light_heads:2,route_q:1/16,route_kv:1/8)");
  LONGCTX_RETURN_IF_ERROR(c.validate());
  *out = std::move(c);
  return Status::Ok();
}

std::string blocks_summary(const ModelConfig& c) {
  return layer_summary(c, [](const LayerConfig& l) { return layers::format_blocks(l.blocks); });
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
