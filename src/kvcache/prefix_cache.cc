#include "kvcache/prefix_cache.h"

#include <algorithm>

#include "core/check.h"

namespace longctx::kvcache {

uint64_t PrefixCache::page_key(uint64_t parent, std::span<const int32_t> tokens) {
  // splitmix64 steps over the parent key and each token: a 64-bit mix, keys are compared with
  // the tokens on lookup anyway.
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(parent + 0x9e3779b97f4a7c15ULL);
  for (int32_t t : tokens) h = mix(h ^ (static_cast<uint64_t>(static_cast<uint32_t>(t)) + 0x9e3779b97f4a7c15ULL));
  return h == 0 ? 1 : h;  // 0 is "no parent"
}

int64_t PrefixCache::attach(KvCache& cache, std::span<const int32_t> tokens, int64_t max_rows) {
  CHECK(cache.shared_pool() == pool_ && cache.blocks_held() == 0);
  const int64_t R = cache.geometry().page_rows;
  const int64_t limit = std::min<int64_t>(max_rows, static_cast<int64_t>(tokens.size()));
  uint64_t parent = 0;
  int64_t page = 0;
  for (; (page + 1) * R <= limit; ++page) {
    const auto toks = tokens.subspan(page * R, R);
    const uint64_t key = page_key(parent, toks);
    auto it = map_.find(key);
    if (it == map_.end() || it->second.parent != parent || !std::equal(toks.begin(), toks.end(), it->second.tokens.begin()))
      break;
    Entry& e = it->second;
    CHECK(static_cast<int>(e.blocks.size()) == cache.n_slots());
    for (int s = 0; s < cache.n_slots(); ++s) cache.adopt(s, page, e.blocks[s]);
    e.last_used = ++clock_;
    parent = key;
  }
  hit_pages_ += page;
  return page * R;
}

void PrefixCache::insert(const KvCache& cache, std::span<const int32_t> tokens, int64_t n) {
  CHECK(cache.shared_pool() == pool_ && n <= static_cast<int64_t>(tokens.size()));
  const int64_t R = cache.geometry().page_rows;
  uint64_t parent = 0;
  for (int64_t page = 0; (page + 1) * R <= n; ++page) {
    const auto toks = tokens.subspan(page * R, R);
    const uint64_t key = page_key(parent, toks);
    auto it = map_.find(key);
    if (it != map_.end()) {
      // Kept already (or a different prefix under the same key: keep the first).
      if (it->second.parent != parent || !std::equal(toks.begin(), toks.end(), it->second.tokens.begin())) return;
      it->second.last_used = ++clock_;
      parent = key;
      continue;
    }
    Entry e;
    e.parent = parent;
    e.tokens.assign(toks.begin(), toks.end());
    for (int s = 0; s < cache.n_slots(); ++s) {
      const int32_t b = cache.block(s, page);
      if (b < 0) return;  // a slot gave this page back: nothing from here on can be kept
      e.blocks.push_back(b);
    }
    for (int32_t b : e.blocks) pool_->retain(b);
    e.last_used = ++clock_;
    if (parent != 0) ++map_.at(parent).children;
    map_.emplace(key, std::move(e));
    parent = key;
  }
}

bool PrefixCache::unused(const Entry& e) const {
  return std::all_of(e.blocks.begin(), e.blocks.end(), [&](int32_t b) { return pool_->refs(b) == 1; });
}

int64_t PrefixCache::evict(int64_t want_free) {
  int64_t freed = 0;
  while (pool_->free_blocks() < want_free) {
    auto victim = map_.end();
    for (auto it = map_.begin(); it != map_.end(); ++it)
      if (it->second.children == 0 && unused(it->second) &&
          (victim == map_.end() || it->second.last_used < victim->second.last_used))
        victim = it;
    if (victim == map_.end()) break;
    for (int32_t b : victim->second.blocks) pool_->release(b);
    freed += static_cast<int64_t>(victim->second.blocks.size());
    if (victim->second.parent != 0) --map_.at(victim->second.parent).children;
    map_.erase(victim);
    ++evicted_;
  }
  return freed;
}

void PrefixCache::clear() {
  for (auto& [key, e] : map_)
    for (int32_t b : e.blocks) pool_->release(b);
  map_.clear();
}

int64_t PrefixCache::blocks_held() const {
  int64_t n = 0;
  for (const auto& [key, e] : map_) n += static_cast<int64_t>(e.blocks.size());
  return n;
}

int64_t PrefixCache::blocks_evictable() const {
  int64_t n = 0;
  for (const auto& [key, e] : map_)
    if (unused(e)) n += static_cast<int64_t>(e.blocks.size());
  return n;
}

}  // namespace longctx::kvcache
