#include "layers/block.h"

#include "core/check.h"

#include <set>
#include <string>

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

Expected<std::vector<std::pair<std::string, std::string>>> parse_block_args(const std::string& args,
                                                                            const std::vector<std::string>& known) {
  std::vector<std::pair<std::string, std::string>> out;
  std::set<std::string> seen;
  std::string list;
  for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
  size_t start = 0;
  while (start < args.size()) {
    size_t end = args.find(',', start);
    if (end == std::string::npos) end = args.size();
    const std::string part = args.substr(start, end - start);
    start = end + 1;
    const size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == part.size())
      return Status::Error("argument '" + part + "' is not key=value (keys: " + list + ")");
    const std::string key = part.substr(0, eq);
    bool ok = false;
    for (const auto& k : known) ok = ok || k == key;
    if (!ok) return Status::Error("unknown argument '" + key + "' (keys: " + list + ")");
    if (!seen.insert(key).second) return Status::Error("argument '" + key + "' given twice");
    out.emplace_back(key, part.substr(eq + 1));
  }
  return out;
}

Expected<int64_t> parse_size_arg(const std::string& key, const std::string& value, int64_t min) {
  int64_t v = 0;
  size_t used = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < min || v > (int64_t(1) << 24))
    return Status::Error("argument " + key + "='" + value + "' is not an integer in [" + std::to_string(min) + ", " +
                         std::to_string(int64_t(1) << 24) + "]");
  return v;
}

}  // namespace longctx::layers
