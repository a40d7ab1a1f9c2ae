#include "model/architectures/common.h"

#include <variant>

#include "model/checkpoint.h"
#include "model/model.h"

namespace longctx::model::arch {

Expected<int> gguf_size_key(const io::GgufFile& f, const std::string& key) {
  auto v = f.get_uint(key);
  if (!v.ok()) return v.status();
  if (*v < 1 || *v > (1u << 24)) return Status::Error("key '" + key + "' is out of range");
  return static_cast<int>(*v);
}

Status check_uniform_causal(const ModelConfig& c, const std::string& arch) {
  auto no = [&](const std::string& what) { return Status::Error("not a " + arch + " model: " + what); };
  const LayerConfig& l0 = c.layers.at(0);
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    if (lc.blocks != layers::default_blocks())
      return no("layer " + std::to_string(l) + " runs " + layers::format_blocks(lc.blocks) + "; " + arch +
                " layers are attention+feed_forward");
    if (!std::holds_alternative<attention::Causal>(lc.pattern))
      return no("layer " + std::to_string(l) + " attends with " + attention::format_pattern(lc.pattern) + "; " + arch +
                " attends causally to every key");
    if (lc.heads != l0.heads || lc.kv_heads != l0.kv_heads || lc.head_dim != l0.head_dim || lc.ff_dim != l0.ff_dim)
      return no("layer " + std::to_string(l) + " differs in shape from layer 0");
  }
  if (l0.heads * l0.head_dim != c.model_dim) return no("heads * head_dim != model_dim");
  return Status::Ok();
}

Status write_tensors_as_named(io::GgufWriter& w, const Model& m) { return add_model_tensors(w, m); }

}  // namespace longctx::model::arch
