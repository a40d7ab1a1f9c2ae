// The blocks of a model, made from its config: every layer's LayerConfig::blocks in order.
#pragma once
#include <memory>
#include <vector>

#include "core/status.h"
#include "layers/block.h"
#include "model/config.h"

namespace longctx::model {

struct ModelBlocks {
  std::vector<std::unique_ptr<layers::Block>> blocks;
  std::vector<int> layer;  // the layer of each block
};

// Errors: a kind the table does not know, arguments a kind refuses, or two blocks of one layer
// declaring the same tensor name (each message names the layer). c's layer fields must already
// be sane (ModelConfig::validate checks them first and then calls this).
Expected<ModelBlocks> make_blocks(const ModelConfig& c);

}  // namespace longctx::model
