// Helpers shared by model tests: a ModelConfig from the golden files' JSON config.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "model/config.h"

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
  return c;
}

}  // namespace longctx::testing
