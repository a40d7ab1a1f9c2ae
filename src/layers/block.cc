#include "layers/block.h"

#include "core/check.h"

namespace longctx::layers {

int Block::declare(TensorDecl d) {
  decls_.push_back(std::move(d));
  return static_cast<int>(decls_.size()) - 1;
}

void Block::bind(std::vector<int64_t> offsets, int64_t first_index) {
  CHECK(offsets.size() == decls_.size());
  offsets_ = std::move(offsets);
  first_ = first_index;
}

}  // namespace longctx::layers
