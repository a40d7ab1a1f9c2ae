#include "model/blocks.h"

#include <set>
#include <string>

namespace longctx::model {

Expected<ModelBlocks> make_blocks(const ModelConfig& c) {
  ModelBlocks out;
  const layers::Settings settings = c.settings();
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    std::set<std::string> names;
    for (const layers::BlockSpec& spec : lc.blocks) {
      auto b = layers::make_block(spec, layers::BlockEnv{settings, lc, l, spec.args});
      if (!b.ok()) return b.status().Wrap("layer " + std::to_string(l));
      for (const layers::TensorDecl& t : (*b)->tensors())
        if (!names.insert(t.name).second)
          return Status::Error("layer " + std::to_string(l) + ": two blocks declare tensor '" + t.name + "'");
      out.blocks.push_back(std::move(*b));
      out.layer.push_back(l);
    }
  }
  return out;
}

}  // namespace longctx::model
