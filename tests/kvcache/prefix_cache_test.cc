// kvcache::PrefixCache: a sequence that adopts kept pages gives the logits of a cold run bit for
// bit (pages shared, never copied); a prefix that diverges inside a page adopts only the pages
// before it; keys chain through the parent; eviction gives back least recently used pages no
// sequence holds, leaves first, and every reference is returned.
#include <gtest/gtest.h>

#include <cstring>

#include "attention/pattern.h"
#include "kvcache/prefix_cache.h"
#include "model/model.h"

namespace longctx {
namespace {

constexpr int64_t kPage = 8;

model::ModelConfig config() {
  model::ModelConfig c;
  c.vocab_size = 41;
  c.model_dim = 64;
  c.ctx = 64;
  c.set_uniform_layers(3, model::LayerConfig{4, 2, 16, 96});
  auto pats = attention::parse_pattern_list("window:6,causal");
  CHECK(pats.ok());
  for (int l = 0; l < c.n_layers(); ++l) c.layers[l].pattern = (*pats)[l % pats->size()];
  return c;
}

struct Fixture {
  model::ModelConfig cfg = config();
  model::Model m{cfg};
  ThreadPool pool{2};
  Arena arena;
  kvcache::KvCache root;
  std::unique_ptr<kvcache::PrefixCache> prefix;

  explicit Fixture(int64_t extra_blocks) {
    Rng rng(4);
    m.init(rng);
    model::Model::CacheOptions o;
    o.page_rows = kPage;
    o.ubatch = 1;
    o.extra_blocks = extra_blocks;
    root = *m.make_cache(cfg.ctx, o);
    prefix = std::make_unique<kvcache::PrefixCache>(root.shared_pool());
  }
  // Runs tokens[from, n) one at a time through cache; returns the logits after each. With keep,
  // every page is kept as soon as it is full (before a window layer gives it back).
  std::vector<float> run(kvcache::KvCache& cache, const std::vector<int32_t>& t, int64_t from, bool keep = false) {
    const int64_t V = cfg.vocab_size;
    std::vector<float> out;
    std::vector<float> logits(V);
    for (int64_t p = from; p < static_cast<int64_t>(t.size()); ++p) {
      EXPECT_TRUE(m.forward_cached(pool, arena, cache, &t[p], 1, p, logits.data(), false).ok());
      out.insert(out.end(), logits.begin(), logits.end());
      if (keep) prefix->insert(cache, t, p + 1);
    }
    return out;
  }
};

std::vector<int32_t> random_tokens(int64_t n, uint64_t seed, int vocab) {
  Rng rng(seed);
  std::vector<int32_t> t(n);
  for (auto& x : t) x = static_cast<int32_t>(rng.below(vocab));
  return t;
}

TEST(PrefixCache, AdoptedPagesGiveTheColdLogits) {
  Fixture f(64);
  const int V = f.cfg.vocab_size;
  const std::vector<int32_t> a = random_tokens(30, 1, V);
  kvcache::KvCache ca = f.root.fork(0);
  f.run(ca, a, 0, true);
  EXPECT_EQ(f.prefix->entries(), 3);  // 3 full pages of 8
  // Kept afterwards instead, the pages the window layers gave back end the run: nothing kept.
  kvcache::PrefixCache late(f.root.shared_pool());
  late.insert(ca, a, 30);
  EXPECT_EQ(late.entries(), 0);

  // b shares 20 tokens with a (2.5 pages): it adopts 2 pages and runs the rest.
  std::vector<int32_t> b = a;
  b.resize(20);
  for (int32_t t : random_tokens(15, 2, V)) b.push_back(t);
  kvcache::KvCache cb = f.root.fork(0);
  const int64_t got = f.prefix->attach(cb, b, static_cast<int64_t>(b.size()) - 1);
  EXPECT_EQ(got, 16);
  const int64_t used_before = f.root.pool().blocks() - f.root.pool().free_blocks();
  const std::vector<float> warm = f.run(cb, b, got);
  kvcache::KvCache cold_cache = f.root.fork(0);
  const std::vector<float> cold = f.run(cold_cache, b, 0);
  ASSERT_EQ(warm.size() + got * V, cold.size());
  EXPECT_EQ(std::memcmp(warm.data(), cold.data() + got * V, warm.size() * sizeof(float)), 0);
  // The adopted pages were read in place: a's blocks are still a's (no copy was needed for them).
  for (int s = 0; s < cb.n_slots(); ++s)
    for (int64_t p = 0; p < 2; ++p)
      if (cb.block(s, p) >= 0 && ca.block(s, p) >= 0)
        EXPECT_EQ(cb.block(s, p), ca.block(s, p)) << "slot " << s << " page " << p;
  EXPECT_GT(f.root.pool().blocks() - f.root.pool().free_blocks(), used_before);
  EXPECT_EQ(f.prefix->hit_pages(), 2);

  // Attaching is capped by max_rows, and a prefix that differs in its first page adopts nothing.
  kvcache::KvCache cc = f.root.fork(0);
  EXPECT_EQ(f.prefix->attach(cc, a, 15), 8);
  std::vector<int32_t> d = a;
  d[3] = (d[3] + 1) % V;
  kvcache::KvCache cd = f.root.fork(0);
  EXPECT_EQ(f.prefix->attach(cd, d, 29), 0);
}

// The rows a finished sequence held past its last full page (a partial entry): a later sequence
// that starts with some of them takes those rows and runs on from there to the cold logits, its
// writes go to a copy of the page (a third sequence still finds the first one's rows); the same
// for the first rows of a whole kept page; eviction gives every block back.
TEST(PrefixCache, PartialPageOfAFinishedSequenceGivesTheColdLogits) {
  Fixture f(64);
  const int V = f.cfg.vocab_size;
  const int64_t total = f.root.pool().blocks();
  const std::vector<int32_t> a = random_tokens(13, 7, V);
  {
    kvcache::KvCache ca = f.root.fork(0);
    f.run(ca, a, 0, true);
    f.prefix->insert_partial(ca, a, 13);  // rows 8..12 of page 1
    f.prefix->insert_partial(ca, a, 12);  // covered by the first: not kept again
  }
  EXPECT_EQ(f.prefix->entries(), 2);  // page 0 and the partial page 1
  auto continue_like_cold = [&](int64_t shared, int64_t min_rows, int64_t want_partial, int64_t want_pages = 8) {
    std::vector<int32_t> b(a.begin(), a.begin() + shared);
    for (int32_t t : random_tokens(9, 100 + shared, V)) b.push_back((t + 1) % V == a[shared] ? t : (t + 1) % V);
    kvcache::KvCache cb = f.root.fork(0);
    const int64_t n = static_cast<int64_t>(b.size());
    const int64_t pages = f.prefix->attach(cb, b, n - 1);
    EXPECT_EQ(pages, want_pages);
    const int64_t more = f.prefix->attach_partial(cb, b, pages, n - 1, min_rows);
    EXPECT_EQ(more, want_partial);
    const std::vector<float> warm = f.run(cb, b, pages + more);
    kvcache::KvCache cold_cache = f.root.fork(0);
    const std::vector<float> cold = f.run(cold_cache, b, 0);
    ASSERT_EQ(warm.size() + (pages + more) * V, cold.size());
    EXPECT_EQ(std::memcmp(warm.data(), cold.data() + (pages + more) * V, warm.size() * sizeof(float)), 0);
  };
  continue_like_cold(11, 2, 3);  // takes rows 8..10, writes its own from 11 (a copy of the page)
  continue_like_cold(12, 2, 4);  // the kept rows are still a's
  continue_like_cold(10, 3, 0);  // 2 shared rows: fewer than asked for
  continue_like_cold(5, 2, 5, 0);  // the first rows of a whole kept page (its tokens go on otherwise)
  EXPECT_EQ(f.prefix->partial_hits(), 3);
  // A shorter partial page that is not a prefix of the kept one is kept beside it.
  {
    std::vector<int32_t> a2(a.begin(), a.begin() + 8);
    a2.push_back((a[8] + 1) % V);
    a2.push_back(a[9]);
    kvcache::KvCache c2 = f.root.fork(0);
    f.prefix->attach(c2, a2, 8);
    f.run(c2, a2, 8);
    f.prefix->insert_partial(c2, a2, 10);
  }
  EXPECT_EQ(f.prefix->entries(), 3);
  f.prefix->evict(total);
  EXPECT_EQ(f.prefix->entries(), 0);
  EXPECT_EQ(f.root.pool().free_blocks(), total);
}

TEST(PrefixCache, KeysChainThroughTheParent) {
  const std::vector<int32_t> page = {1, 2, 3, 4, 5, 6, 7, 8};
  const uint64_t k0 = kvcache::PrefixCache::page_key(0, page);
  EXPECT_NE(k0, kvcache::PrefixCache::page_key(k0, page));  // the same tokens later in a sequence
  std::vector<int32_t> other = page;
  other[7] = 9;
  EXPECT_NE(k0, kvcache::PrefixCache::page_key(0, other));
}

TEST(PrefixCache, EvictsUnusedLeastRecentlyUsedLeavesFirstAndReturnsEveryBlock) {
  Fixture f(64);
  const int V = f.cfg.vocab_size;
  const int64_t total = f.root.pool().blocks();
  const std::vector<int32_t> a = random_tokens(17, 5, V), b = random_tokens(17, 6, V);
  {
    kvcache::KvCache ca = f.root.fork(0), cb = f.root.fork(0);
    f.run(ca, a, 0, true);
    f.run(cb, b, 0, true);
    EXPECT_EQ(f.prefix->entries(), 4);
    // While the sequences hold their pages nothing can go.
    EXPECT_EQ(f.prefix->evict(total), 0);
    EXPECT_EQ(f.prefix->entries(), 4);
  }
  EXPECT_EQ(f.prefix->blocks_evictable(), f.prefix->blocks_held());
  // Use a's pages again: b's are older, so b goes first, its second page before its first.
  kvcache::KvCache again = f.root.fork(0);
  EXPECT_EQ(f.prefix->attach(again, a, 16), 16);
  again = kvcache::KvCache();
  const int64_t free0 = f.root.pool().free_blocks();
  const int64_t per_page = f.root.n_slots();
  EXPECT_EQ(f.prefix->evict(free0 + 1), per_page);
  EXPECT_EQ(f.prefix->entries(), 3);
  kvcache::KvCache probe = f.root.fork(0);
  EXPECT_EQ(f.prefix->attach(probe, b, 16), 8);  // b's first page is still there
  probe = kvcache::KvCache();
  // Everything back: the pool is whole again.
  f.prefix->evict(total);
  EXPECT_EQ(f.prefix->entries(), 0);
  EXPECT_EQ(f.root.pool().free_blocks(), total);
}

}  // namespace
}  // namespace longctx
