// PrefixCache: full pages of computed tokens kept for every later sequence that starts with the
// same tokens (a system prompt, a document several questions are asked about, a chat's earlier
// turns), across requests and while they run at the same time.
//
// An entry is one page of one sequence: its page_rows tokens, and per cache slot the pool block
// holding their K/V rows. It is keyed by a hash of (the parent page's key, the page's tokens), so
// a key names the whole prefix up to the end of its page: the page's K/V rows are right only
// after exactly that prefix at exactly those positions. Lookups compare the tokens too (a hash
// collision is a miss, never a wrong page).
//
// Entries hold a reference to their blocks (kvcache/kv_pool.h), as every sequence that adopts
// them does; a shared full page is never written (a sequence writes past its adopted pages), so
// copy on write is never needed for them.
//
// Partial entries (insert_partial) keep the rows a finished sequence held past its last full
// page (fewer than a page: a short system prompt, the end of a chat turn), under the key of the
// full pages before them. attach_partial takes the first rows of such an entry, or of a whole
// page a prompt leaves in its middle, and the sequence writes its own after them: the page is
// then copied on write. Only for a model
// whose rows do not depend on the pass computing them (model::Model::set_integer_prefill): the
// rows were computed in another request's chunks. At most kPartialsPerParent per parent. When the pool runs out,
// evict() gives back the least recently used entries no sequence holds, leaves first (an entry
// whose descendants are kept stays: they would be unreachable without it).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include "kvcache/kv_cache.h"

namespace longctx::kvcache {

class PrefixCache {
 public:
  explicit PrefixCache(std::shared_ptr<KvPool> pool) : pool_(std::move(pool)) {}

  // Gives `cache` (a sequence on this pool holding nothing yet) the longest run of kept pages
  // that `tokens` starts with, up to max_rows rows; returns the rows it now holds (a multiple
  // of the page size).
  int64_t attach(KvCache& cache, std::span<const int32_t> tokens, int64_t max_rows);
  // Keeps the full pages of tokens[0, n) that `cache` holds and are not kept yet (call after
  // the pass that computed them; pages a slot no longer holds end the run).
  void insert(const KvCache& cache, std::span<const int32_t> tokens, int64_t n);
  // Keeps rows [k * page, n) of `cache` (k = n / page; none when that is empty) as a partial
  // entry under the full pages of tokens[0, k * page), when those are kept.
  void insert_partial(const KvCache& cache, std::span<const int32_t> tokens, int64_t n);
  // After attach() gave `cache` the `attached` rows (whole pages) of `tokens`: the entry under
  // those pages (a partial one, or a whole page the tokens leave in its middle) that shares the
  // most of tokens[attached, max_rows), when that is at least min_rows, becomes the next page
  // of `cache`; returns the rows it adds (0: none).
  int64_t attach_partial(KvCache& cache, std::span<const int32_t> tokens, int64_t attached, int64_t max_rows,
                         int64_t min_rows);
  // Gives back entries until the pool has `want_free` free blocks or nothing more can go;
  // returns the blocks given back.
  int64_t evict(int64_t want_free);
  void clear();

  int64_t entries() const { return static_cast<int64_t>(map_.size()); }
  // Blocks the entries hold, and those only they hold (what evict() could give back).
  int64_t blocks_held() const;
  int64_t blocks_evictable() const;
  int64_t hit_pages() const { return hit_pages_; }
  int64_t partial_hits() const { return partial_hits_; }
  int64_t evicted_pages() const { return evicted_; }

  // The key of a page: its parent's key (0 for the first page) and its tokens.
  static uint64_t page_key(uint64_t parent, std::span<const int32_t> tokens);

 private:
  static constexpr int kPartialsPerParent = 4;
  struct Entry {
    uint64_t parent = 0;
    bool partial = false;  // fewer tokens than a page (never a parent)
    std::vector<int32_t> tokens;
    std::vector<int32_t> blocks;  // per slot
    uint64_t last_used = 0;
    int children = 0;
  };
  bool unused(const Entry& e) const;  // no sequence holds its blocks
  // Whether e is the whole page `toks` after the page keyed `parent` (a key names it only up to
  // collisions, and partial entries are not pages).
  static bool is_page(const Entry& e, uint64_t parent, std::span<const int32_t> toks);
  // The key of the whole pages tokens[0, pages * page) when all are kept (0 for none), else -1
  // through ok = false.
  uint64_t chain_key(std::span<const int32_t> tokens, int64_t pages, int64_t page_rows, bool* ok) const;
  void erase(std::unordered_map<uint64_t, Entry>::iterator it);  // gives its blocks back

  std::shared_ptr<KvPool> pool_;
  std::unordered_map<uint64_t, Entry> map_;
  uint64_t clock_ = 0;
  int64_t hit_pages_ = 0, evicted_ = 0, partial_hits_ = 0;
};

}  // namespace longctx::kvcache
