// Helpers shared by model tests: a ModelConfig from the golden files' JSON config, including the
// optional keys "patterns" (one attention pattern per layer; absent = causal) and "rope_scaling"
// (a parse_rope_scaling spec; absent = none; "yarn:F" without ORIG extends ctx, as in
// tests/golden/torch_model.py) and "colt5" (model::apply_colt5's spec; absent = dense).
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "attention/pattern.h"
#include "core/check.h"
#include "model/config.h"
#include "model/config_overrides.h"
#include "position/rope.h"

namespace longctx::testing {

inline model::ModelConfig config_from_json(const std::string& text) {
  const auto j = nlohmann::json::parse(text);
  model::ModelConfig c;
  c.vocab_size = j["vocab_size"];
  c.model_dim = j["model_dim"];
  c.ctx = j["ctx"];
  c.norm = *model::parse_norm(j["norm"].get<std::string>());
  c.norm_eps = j["norm_eps"];
  c.mlp = *model::parse_mlp(j["mlp"].get<std::string>());
  c.bias = j["bias"];
  c.tied_embeddings = j["tied_embeddings"];
  c.pos = *model::parse_pos(j["pos"].get<std::string>());
  c.rope_theta = j["rope_theta"];
  c.set_uniform_layers(j["n_layers"], model::LayerConfig{j["heads"], j["kv_heads"], j["head_dim"], j["ff_dim"]});
  if (j.contains("patterns")) {
    const auto& pats = j["patterns"];
    CHECK_MSG(pats.size() == c.layers.size(), "golden config: 'patterns' needs one entry per layer");
    for (size_t l = 0; l < c.layers.size(); ++l) {
      auto p = attention::parse_pattern(pats[l].get<std::string>());
      CHECK_MSG(p.ok(), "golden config: bad pattern");
      c.layers[l].pattern = *p;
    }
  }
  if (j.contains("colt5")) {
    const Status st = model::apply_colt5(j["colt5"].get<std::string>(), &c);
    CHECK_MSG(st.ok(), "golden config: bad colt5");
  }
  if (j.contains("rope_scaling")) {
    auto rs = position::parse_rope_scaling(j["rope_scaling"].get<std::string>());
    CHECK_MSG(rs.ok(), "golden config: bad rope_scaling");
    c.rope_scaling = *rs;
    if (c.rope_scaling.type == position::RopeScalingType::kYarn && c.rope_scaling.original_ctx == 0)
      c.rope_scaling.original_ctx = c.ctx;
  }
  return c;
}

}  // namespace longctx::testing
