#include "layers/block.h"

#include "core/check.h"

namespace longctx::layers {

int Block::declare(TensorDecl d) {
  decls_.push_back(std::move(d));
  return static_cast<int>(decls_.size()) - 1;
}

void Block::declare_lora(const Settings& s, int matrix, const std::string& target) {
  if (!s.lora.targets_matrix(target)) return;
  const TensorDecl m = decls_[matrix];
  CHECK(m.shape.size() == 2);
  const int64_t r = s.lora.rank;
  LoraPair p;
  p.matrix = matrix;
  p.rank = r;
  p.scale = s.lora.scale();
  p.dropout = s.lora.dropout;
  p.a = declare({m.name + ".lora_a", {r, m.shape[1]}, kF32, true, false, Init::kLoraA});
  p.b = declare({m.name + ".lora_b", {m.shape[0], r}, kF32, true, false, Init::kZeros});
  lora_.push_back(p);
}

std::vector<LoraTerm> Block::lora(const Weights& w, int i) const {
  std::vector<LoraTerm> out;
  if (i < 0) return out;
  for (const LoraPair& p : lora_)
    if (p.matrix == i)
      out.push_back({param(w, p.a), param(w, p.b), grad(w, p.a), grad(w, p.b), p.rank, p.scale, p.dropout,
                     static_cast<uint64_t>(first_ + i)});
  if (w.adapters)
    for (const LoraTerm& t : w.adapters[first_ + i]) out.push_back(t);
  return out;
}

void Block::bind(std::vector<int64_t> offsets, int64_t first_index) {
  CHECK(offsets.size() == decls_.size());
  offsets_ = std::move(offsets);
  first_ = first_index;
}

}  // namespace longctx::layers
