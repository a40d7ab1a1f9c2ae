// The block kinds longctx knows by name: one line per kind, its factory declared in its file.
#include <map>
#include <mutex>

#include "layers/attention_block.h"
#include "layers/block.h"
#include "layers/feed_forward.h"
#include "layers/routed_attention.h"
#include "layers/routed_feed_forward.h"

namespace longctx::layers {
namespace {

std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}

std::map<std::string, BlockFactory>& table() {
  static std::map<std::string, BlockFactory> t = {
      {"attention", make_attention_block},
      {"feed_forward", make_feed_forward_block},
      {"routed_attention", make_routed_attention_block},
      {"routed_feed_forward", make_routed_feed_forward_block},
  };
  return t;
}

}  // namespace

Expected<std::unique_ptr<Block>> make_block(const BlockSpec& spec, const BlockEnv& env) {
  BlockFactory f;
  {
    std::lock_guard<std::mutex> lock(table_mutex());
    auto it = table().find(spec.kind);
    if (it == table().end()) {
      std::string known;
      for (const auto& [name, unused] : table()) known += (known.empty() ? "" : ", ") + name;
      return Status::Error("unknown block kind '" + spec.kind + "' (known: " + known + ")");
    }
    f = it->second;
  }
  auto b = f(env);
  if (!b.ok()) return b.status().Wrap("block '" + format_block(spec) + "'");
  return b;
}

Status register_block_kind(const std::string& kind, BlockFactory factory) {
  std::lock_guard<std::mutex> lock(table_mutex());
  if (!table().emplace(kind, std::move(factory)).second)
    return Status::Error("block kind '" + kind + "' is already registered");
  return Status::Ok();
}

std::vector<std::string> block_kinds() {
  std::lock_guard<std::mutex> lock(table_mutex());
  std::vector<std::string> out;
  for (const auto& [name, unused] : table()) out.push_back(name);
  return out;
}

}  // namespace longctx::layers
