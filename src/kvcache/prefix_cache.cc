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
    if (it == map_.end() || !is_page(it->second, parent, toks)) break;
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
      if (!is_page(it->second, parent, toks)) return;
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

bool PrefixCache::is_page(const Entry& e, uint64_t parent, std::span<const int32_t> toks) {
  return !e.partial && e.parent == parent && std::equal(toks.begin(), toks.end(), e.tokens.begin());
}

uint64_t PrefixCache::chain_key(std::span<const int32_t> tokens, int64_t pages, int64_t R, bool* ok) const {
  uint64_t parent = 0;
  *ok = true;
  for (int64_t page = 0; page < pages; ++page) {
    const auto toks = tokens.subspan(page * R, R);
    const uint64_t key = page_key(parent, toks);
    auto it = map_.find(key);
    if (it == map_.end() || !is_page(it->second, parent, toks)) {
      *ok = false;
      return 0;
    }
    parent = key;
  }
  return parent;
}

void PrefixCache::erase(std::unordered_map<uint64_t, Entry>::iterator it) {
  for (int32_t b : it->second.blocks) pool_->release(b);
  if (it->second.parent != 0) --map_.at(it->second.parent).children;
  map_.erase(it);
}

void PrefixCache::insert_partial(const KvCache& cache, std::span<const int32_t> tokens, int64_t n) {
  CHECK(cache.shared_pool() == pool_ && n <= static_cast<int64_t>(tokens.size()));
  const int64_t R = cache.geometry().page_rows, k = n / R, len = n - k * R;
  if (len == 0) return;
  bool ok = false;
  const uint64_t parent = chain_key(tokens, k, R, &ok);
  if (!ok) return;
  const auto toks = tokens.subspan(k * R, len);
  Entry e;
  e.parent = parent;
  e.partial = true;
  e.tokens.assign(toks.begin(), toks.end());
  for (int s = 0; s < cache.n_slots(); ++s) {
    const int32_t b = cache.block(s, k);
    if (b < 0) return;  // a window slot gave the page back
    e.blocks.push_back(b);
  }
  // One of the kept partials under this parent covers these rows already: keep that one. One
  // these rows cover, or the least recently used beyond the limit, goes.
  int same_parent = 0;
  auto oldest = map_.end();
  for (auto it = map_.begin(); it != map_.end();) {
    Entry& o = it->second;
    if (!o.partial || o.parent != parent) {
      ++it;
      continue;
    }
    if (o.tokens.size() >= e.tokens.size() && std::equal(e.tokens.begin(), e.tokens.end(), o.tokens.begin())) {
      o.last_used = ++clock_;
      return;
    }
    if (o.tokens.size() < e.tokens.size() && std::equal(o.tokens.begin(), o.tokens.end(), e.tokens.begin()) &&
        unused(o)) {
      auto gone = it++;
      erase(gone);
      continue;
    }
    ++same_parent;
    if (unused(o) && (oldest == map_.end() || o.last_used < oldest->second.last_used)) oldest = it;
    ++it;
  }
  if (same_parent >= kPartialsPerParent) {
    if (oldest == map_.end()) return;
    erase(oldest);
  }
  const uint64_t key = page_key(parent, toks) ^ 0x5851f42d4c957f2dULL;  // apart from whole pages' keys
  if (key == 0 || map_.count(key)) return;
  for (int32_t b : e.blocks) pool_->retain(b);
  e.last_used = ++clock_;
  if (parent != 0) ++map_.at(parent).children;
  map_.emplace(key, std::move(e));
}

int64_t PrefixCache::attach_partial(KvCache& cache, std::span<const int32_t> tokens, int64_t attached,
                                    int64_t max_rows, int64_t min_rows) {
  CHECK(cache.shared_pool() == pool_);
  const int64_t R = cache.geometry().page_rows, k = attached / R;
  const int64_t limit = std::min<int64_t>({max_rows, static_cast<int64_t>(tokens.size()), (k + 1) * R});
  if (attached % R != 0 || limit - attached < min_rows) return 0;
  bool ok = false;
  const uint64_t parent = chain_key(tokens, k, R, &ok);
  if (!ok) return 0;
  Entry* best = nullptr;
  int64_t best_n = 0;
  for (auto& [key, e] : map_) {
    if (e.parent != parent) continue;  // partial entries, and whole pages the tokens leave inside
    int64_t n = 0;
    const int64_t most = std::min<int64_t>(static_cast<int64_t>(e.tokens.size()), limit - attached);
    while (n < most && e.tokens[n] == tokens[attached + n]) ++n;
    if (n > best_n) {
      best_n = n;
      best = &e;
    }
  }
  if (!best || best_n < min_rows) return 0;
  CHECK(static_cast<int>(best->blocks.size()) == cache.n_slots());
  for (int s = 0; s < cache.n_slots(); ++s) {
    if (cache.block(s, k) >= 0) return 0;  // (attach() leaves the page free)
  }
  for (int s = 0; s < cache.n_slots(); ++s) cache.adopt(s, k, best->blocks[s]);
  best->last_used = ++clock_;
  ++partial_hits_;
  return best_n;
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
    freed += static_cast<int64_t>(victim->second.blocks.size());
    erase(victim);
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
