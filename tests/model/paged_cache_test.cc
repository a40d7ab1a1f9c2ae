// The paged KV cache (kvcache/kv_cache.h): decoding through pages of any size, in fp32, fp16 and
// Q8_0, equals the full forward pass; window layers hold their window only; a forked prefix gives
// the logits of a cold run bit for bit, and requests in turn behind a kept prefix are answered
// as cold runs answer them; a context shift re-rotates keys to their new positions, and
// generation with it runs past the context deterministically.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>

#include "attention/pattern.h"
#include "infer/session.h"
#include "model/model.h"
#include "quant/formats.h"
#include "tokenizer/bpe.h"

namespace longctx {
namespace {

// head_dim 32 (a Q8_0 block); heads 4 over kv_heads 4 / 2 / 1; layers alternate a window of 8
// and causal attention.
model::ModelConfig config(int kv_heads, const std::string& patterns = "window:8,causal") {
  model::ModelConfig c;
  c.vocab_size = 53;
  c.model_dim = 64;
  c.ctx = 72;
  c.set_uniform_layers(4, model::LayerConfig{4, kv_heads, 32, 96});
  auto pats = attention::parse_pattern_list(patterns);
  CHECK(pats.ok());
  for (int l = 0; l < c.n_layers(); ++l) c.layers[l].pattern = (*pats)[l % pats->size()];
  return c;
}

std::unique_ptr<model::Model> make_model(const model::ModelConfig& c, uint64_t seed) {
  auto m = std::make_unique<model::Model>(c);
  Rng rng(seed);
  m->init(rng);
  // Larger than the init so attention is peaked and positions matter.
  for (int64_t i = 0; i < m->layout().total(); ++i) m->params()[i] *= 2.0f;
  return m;
}

// Worst |a - b| over rows, relative to each row's logit range in b.
double worst_relative(const float* a, const float* b, int64_t rows, int64_t V) {
  double worst = 0;
  for (int64_t t = 0; t < rows; ++t) {
    float lo = b[t * V], hi = lo;
    for (int64_t v = 0; v < V; ++v) lo = std::min(lo, b[t * V + v]), hi = std::max(hi, b[t * V + v]);
    for (int64_t v = 0; v < V; ++v) worst = std::max(worst, double(std::fabs(a[t * V + v] - b[t * V + v]) / (hi - lo)));
  }
  return worst;
}

struct PagedCase {
  int kv_heads;
  int64_t page_rows;
  uint32_t k_type, v_type;
  double bound;
};

class PagedCacheTest : public ::testing::TestWithParam<PagedCase> {};

TEST_P(PagedCacheTest, DecodeAndChunkedPrefillEqualTheFullForward) {
  const PagedCase pc = GetParam();
  const model::ModelConfig cfg = config(pc.kv_heads);
  ASSERT_TRUE(cfg.validate().ok());
  auto m = make_model(cfg, 11);
  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 70, V = cfg.vocab_size;
  Rng rng(5);
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  std::vector<float> full(T * V), got(T * V);
  m->forward_logits(pool, arena, tokens.data(), 1, T, full.data());

  // Token by token.
  kvcache::KvCache cache = *m->make_cache(cfg.ctx, {pc.k_type, pc.v_type, 1, 1, pc.page_rows});
  for (int64_t t = 0; t < T; ++t) EXPECT_TRUE(m->forward_cached(pool, arena, cache, &tokens[t], 1, t, got.data() + t * V, false).ok());
  const double decode = worst_relative(got.data(), full.data(), T, V);
  std::printf("kv_heads %d, pages of %lld, types %u/%u: decode %.2e of the logit range\n", pc.kv_heads,
              (long long)pc.page_rows, pc.k_type, pc.v_type, decode);
  EXPECT_LE(decode, pc.bound);
  if (pc.k_type != 0 || pc.v_type != 0) EXPECT_GT(decode, 0.0);  // the cache really was quantized

  // Chunks of 9 (the pool sized for them), every row's logits.
  kvcache::KvCache chunked = *m->make_cache(cfg.ctx, {pc.k_type, pc.v_type, 9, 1, pc.page_rows});
  for (int64_t t = 0; t < T; t += 9) {
    const int64_t n = std::min<int64_t>(9, T - t);
    EXPECT_TRUE(m->forward_cached(pool, arena, chunked, tokens.data() + t, n, t, got.data() + t * V, true).ok());
  }
  EXPECT_LE(worst_relative(got.data(), full.data(), T, V), pc.bound);
}

// f32 and f16 within 1e-3 of each row's logit range, Q8_0 within 2e-2; pages of 4 (window
// layers cycle through 3 of them), 16 and 256 (one page).
INSTANTIATE_TEST_SUITE_P(
    Caches, PagedCacheTest,
    ::testing::Values(PagedCase{4, 4, kF32, kF32, 1e-5}, PagedCase{2, 16, kF32, kF32, 1e-5},
                      PagedCase{1, 256, kF32, kF32, 1e-5}, PagedCase{2, 4, kF16, kF16, 1e-3},
                      PagedCase{1, 16, kF16, kF32, 1e-3}, PagedCase{4, 4, kQ8_0, kQ8_0, 2e-2},
                      PagedCase{2, 16, kQ8_0, kQ8_0, 2e-2}, PagedCase{1, 8, kQ8_0, kF16, 2e-2}));

// A window layer never holds more than its window (rounded out to whole pages): the pool is the
// plan's size, and the rows held trail the position by at most window + page - 1. Its memory
// does not grow with the context.
TEST(PagedCache, WindowLayersHoldTheirWindowOnly) {
  const model::ModelConfig cfg = config(2);
  auto m = make_model(cfg, 3);
  ThreadPool pool(2);
  Arena arena;
  const int64_t P = 4, W = 8;
  kvcache::KvCache cache = *m->make_cache(cfg.ctx, {0, 0, 1, 1, P});
  const int64_t window_pages = (W - 1 + 1 + P - 1) / P + 1;  // ceil((W - 1 + 1) / P) + 1
  EXPECT_EQ(cache.pool().blocks(), 2 * window_pages + 2 * (cfg.ctx / P));
  std::vector<float> logits(cfg.vocab_size);
  // Twice: a second sequence in the same cache (from position 0 again) gives back the old
  // sequence's pages as it goes, and the pool never runs short.
  for (int pass = 0; pass < 2; ++pass)
    for (int64_t t = 0; t < cfg.ctx; ++t) {
      const int32_t tok = static_cast<int32_t>(t % cfg.vocab_size);
      EXPECT_TRUE(m->forward_cached(pool, arena, cache, &tok, 1, t, logits.data(), false).ok());
      for (int l = 0; l < cfg.n_layers(); l += 2) {  // the window layers
        ASSERT_LE(cache.pages_held(l), window_pages) << "position " << t;
        ASSERT_LE(t + 1 - cache.first_row(l), W + P - 1) << "position " << t;
      }
      ASSERT_EQ(cache.pages_held(1), t / P + 1);  // a causal layer keeps everything before t
    }
  auto plan = [&](int64_t ctx) { return model::plan_memory(cfg, 0, ctx, 1, kF16, kQ8_0)->kv; };
  model::ModelConfig all_window = config(2, "window:8");
  auto plan_w = [&](int64_t ctx) { return model::plan_memory(all_window, 0, ctx, 64, 0, 0)->kv; };
  EXPECT_EQ(plan_w(4096), plan_w(int64_t{1} << 20));
  EXPECT_LT(plan(4096), plan(8192));
}

// Two requests sharing a prompt: the prefix is computed once, forked, and each continuation gives
// exactly the logits of a cold run; the shared pages are not copied until written.
TEST(PagedCache, ForkedPrefixGivesTheColdRunsLogits) {
  const model::ModelConfig cfg = config(2);
  auto m = make_model(cfg, 21);
  ThreadPool pool(2);
  Arena arena;
  const int64_t V = cfg.vocab_size, prefix = 22, P = 8;
  Rng rng(8);
  std::vector<int32_t> pre(prefix), a(9), b(13);
  for (auto* v : {&pre, &a, &b})
    for (auto& t : *v) t = static_cast<int32_t>(rng.below(V));
  auto run = [&](kvcache::KvCache& c, const std::vector<int32_t>& s, int64_t pos0) {
    std::vector<float> out(s.size() * V);
    for (size_t i = 0; i < s.size(); ++i)
      EXPECT_TRUE(m->forward_cached(pool, arena, c, &s[i], 1, pos0 + int64_t(i), out.data() + i * V, false).ok());
    return out;
  };
  std::vector<float> scratch(V);
  auto cold = [&](const std::vector<int32_t>& s) {
    kvcache::KvCache c = *m->make_cache(cfg.ctx, {0, 0, 8, 1, P});
    EXPECT_TRUE(m->forward_cached(pool, arena, c, pre.data(), prefix, 0, scratch.data(), false).ok());
    return run(c, s, prefix);
  };
  const auto cold_a = cold(a), cold_b = cold(b);

  kvcache::KvCache shared = *m->make_cache(cfg.ctx, {0, 0, 8, 2, P});
  EXPECT_TRUE(m->forward_cached(pool, arena, shared, pre.data(), prefix, 0, scratch.data(), false).ok());
  const int64_t before = shared.pool().blocks() - shared.pool().free_blocks();
  kvcache::KvCache second = shared.fork(prefix);
  EXPECT_EQ(shared.pool().blocks() - shared.pool().free_blocks(), before);  // nothing copied yet
  const auto warm_b = run(second, b, prefix);  // copies only the pages it writes into
  const auto warm_a = run(shared, a, prefix);
  EXPECT_EQ(warm_a, cold_a);
  EXPECT_EQ(warm_b, cold_b);
  EXPECT_LT(shared.pool().blocks() - shared.pool().free_blocks(), 2 * before);
}

// After a shift, the moved keys of the first layer (which depend only on the token and its
// position) equal those a fresh cache computes for the shifted token list; decoding goes on.
TEST(PagedCache, ContextShiftReRotatesKeys) {
  for (uint32_t kt : {kF32, kF16}) {
    SCOPED_TRACE("k_type " + std::to_string(kt));
    model::ModelConfig cfg = config(2, "causal,window:8");
    auto m = make_model(cfg, 4);
    ThreadPool pool(2);
    Arena arena;
    const int64_t n = cfg.ctx, keep = 4, discard = (n - keep) / 2, V = cfg.vocab_size;
    std::vector<int32_t> tokens(n);
    Rng rng(2);
    for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
    std::vector<float> logits(V);
    kvcache::KvCache cache = *m->make_cache(cfg.ctx, {kt, 0, 8, 1, 8});
    for (int64_t t = 0; t < n; t += 8) EXPECT_TRUE(m->forward_cached(pool, arena, cache, tokens.data() + t, 8, t, logits.data(), false).ok());
    ASSERT_TRUE(m->shift_cache(cache, keep, discard, n).ok());
    std::vector<int32_t> shifted(tokens.begin(), tokens.begin() + keep);
    shifted.insert(shifted.end(), tokens.begin() + keep + discard, tokens.end());
    const int64_t n_new = static_cast<int64_t>(shifted.size());
    kvcache::KvCache fresh = *m->make_cache(cfg.ctx, {kt, 0, n_new, 1, 8});
    EXPECT_TRUE(m->forward_cached(pool, arena, fresh, shifted.data(), n_new, 0, logits.data(), false).ok());
    const int64_t kvd = 2 * 32;
    double worst = 0;
    std::vector<float> x(kvd), y(kvd);
    std::vector<uint8_t> raw(quant::row_bytes(kt, kvd));
    for (int64_t i = 0; i < n_new; ++i) {
      cache.read_row(0, i, false, raw.data());
      ASSERT_TRUE(quant::dequantize_row(kt, raw.data(), x.data(), kvd).ok());
      fresh.read_row(0, i, false, raw.data());
      ASSERT_TRUE(quant::dequantize_row(kt, raw.data(), y.data(), kvd).ok());
      for (int64_t j = 0; j < kvd; ++j) worst = std::max(worst, double(std::fabs(x[j] - y[j])) / (1 + std::fabs(y[j])));
    }
    EXPECT_LE(worst, kt == kF32 ? 1e-5 : 2e-3);
    // The window layer kept its window only; decoding continues where the shift left off.
    EXPECT_GE(cache.first_row(1), n_new - 8 - 7);
    for (int64_t t = n_new; t < n_new + 5; ++t)
      EXPECT_TRUE(m->forward_cached(pool, arena, cache, &tokens[t % n], 1, t, logits.data(), false).ok());
    for (float v : logits) ASSERT_TRUE(std::isfinite(v));
  }
}

// A BPE vocabulary of 280 learned from a few repeated lines.
Expected<tokenizer::BpeTokenizer> small_tokenizer() {
  tokenizer::TrainOptions topt;
  topt.vocab_size = 280;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  return tokenizer::BpeTokenizer::train(text, topt);
}

// Generation past the context: an error by default; with context shift it goes on, and the same
// seed gives the same text.
TEST(PagedCache, GenerationWithContextShiftRunsPastTheContext) {
  auto tok = small_tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig cfg = config(1);
  cfg.vocab_size = tok->vocab_size();
  cfg.ctx = 48;
  auto m = make_model(cfg, 6);
  infer::SamplerOptions so;
  so.temp = 0.9f;
  so.seed = 17;
  auto gen = [&](bool shift) -> Expected<std::pair<std::string, int64_t>> {
    infer::Session s(*m, *tok, ThreadPool::global());
    s.set_ubatch(16);
    s.set_context_shift(shift, 5);
    std::string out;
    auto st = s.generate("the quick brown fox", 150, so, [&](const std::string& piece) { out += piece; });
    if (!st.ok()) return st.status();
    EXPECT_GT(st->generated, cfg.ctx);
    return std::make_pair(out, s.shifts());
  };
  auto off = gen(false);
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.status().message().find("context of 48 tokens is full"), std::string::npos) << off.status().message();
  auto one = gen(true), two = gen(true);
  ASSERT_TRUE(one.ok()) << one.status().message();
  ASSERT_TRUE(two.ok());
  EXPECT_GE(one->second, 3);
  EXPECT_EQ(one->first, two->first);
}

// Generation that stops at its token limit leaves the last token without keys in the cache; a
// later set_tokens that extends what the session holds must compute that token, not reuse it:
// its logits equal a fresh session's on the same tokens.
TEST(PagedCache, ExtendingAfterTheTokenLimitEqualsAFreshRun) {
  auto tok = small_tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig cfg = config(1);
  cfg.vocab_size = tok->vocab_size();
  cfg.ctx = 64;
  auto m = make_model(cfg, 8);
  infer::SamplerOptions greedy;
  greedy.temp = 0.0f;
  infer::Session s(*m, *tok, ThreadPool::global());
  auto r = s.generate("the quick brown fox", 6, greedy, [](const std::string&) {});
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->generated, 6);  // stopped at the limit, not at EOS
  std::vector<int32_t> more = s.tokens();
  for (int32_t t : tok->encode(" jumps over")) more.push_back(t);
  ASSERT_TRUE(s.set_tokens(more, nullptr).ok());
  infer::Session fresh(*m, *tok, ThreadPool::global());
  ASSERT_TRUE(fresh.set_tokens(more, nullptr).ok());
  const std::vector<float>& a = s.logits();
  const std::vector<float>& b = fresh.logits();
  float lo = b[0], hi = b[0], diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    lo = std::min(lo, b[i]), hi = std::max(hi, b[i]);
    diff = std::max(diff, std::fabs(a[i] - b[i]));
  }
  EXPECT_LE(diff, 1e-4f * (hi - lo)) << "max |diff| " << diff << " over a logit range of " << hi - lo;
}

// Attribution through a session: every row that produced a token spreads a weight of 1 per head
// and layer over the positions, so the total is rows x heads x layers; positions after the last
// one fed get nothing, and a session without attribution gives the same tokens.
TEST(PagedCache, AttributionSumsToOnePerRowHeadAndLayer) {
  auto tok = small_tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig cfg = config(2);  // window and causal layers
  cfg.vocab_size = tok->vocab_size();
  cfg.ctx = 64;
  auto m = make_model(cfg, 5);
  infer::SamplerOptions greedy;
  greedy.temp = 0.0f;
  std::string with, without;
  infer::Session s(*m, *tok, ThreadPool::global());
  s.set_cache_types(0, 0, 8);
  s.set_attribution(true);
  auto r = s.generate("the quick brown fox jumps over", 7, greedy, [&](const std::string& p) { with += p; });
  ASSERT_TRUE(r.ok()) << r.status().message();
  infer::Session plain(*m, *tok, ThreadPool::global());
  ASSERT_TRUE(plain.generate("the quick brown fox jumps over", 7, greedy, [&](const std::string& p) { without += p; }).ok());
  EXPECT_EQ(with, without);
  EXPECT_EQ(s.attributed_rows(), r->generated);  // the prompt's last row and the tokens fed back
  int64_t heads = 0;
  for (const auto& l : cfg.layers) heads += l.heads;
  double total = 0;
  for (double v : s.attribution()) total += v;
  EXPECT_NEAR(total, double(s.attributed_rows()) * heads, 1e-3 * heads);
  for (size_t j = s.tokens().size() - 1; j < s.attribution().size(); ++j) EXPECT_EQ(s.attribution()[j], 0.0) << j;
}

// Requests in turn behind one kept prefix (infer::Session::keep_prefix): each is answered as a
// fresh session answers it alone, and each reuses the whole prefix, also after an unrelated
// request in between and after its own decoding moved the window layers past the prefix.
TEST(PagedCache, KeptPrefixServesRequestsInTurn) {
  auto tok = small_tokenizer();
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig cfg = config(2);  // window 8 and causal layers, pages of 8 below
  cfg.vocab_size = tok->vocab_size();
  cfg.ctx = 72;
  auto m = make_model(cfg, 9);
  infer::SamplerOptions greedy;
  greedy.temp = 0.0f;
  const std::string shared = "the lazy dog 12 jumps over the quick brown fox 7 and the lazy dog 3 ";
  const std::vector<std::string> prompts = {shared + "jumps", shared + "over the fox", "brown dog 5",
                                            shared + "the quick"};
  auto answer = [&](infer::Session& s, const std::string& p, infer::GenerateStats* st) {
    std::string out;
    auto r = s.generate(p, 12, greedy, [&](const std::string& piece) { out += piece; });
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (r.ok() && st) *st = *r;
    return out;
  };
  std::vector<std::string> cold;
  for (const auto& p : prompts) {
    infer::Session s(*m, *tok, ThreadPool::global());
    s.set_cache_types(0, 0, 8);
    s.set_ubatch(16);
    cold.push_back(answer(s, p, nullptr));
  }
  infer::Session s(*m, *tok, ThreadPool::global());
  s.set_cache_types(0, 0, 8);
  s.set_ubatch(16);
  // The prefix: the tokens prompts 0, 1 and 3 start with.
  std::vector<int32_t> prefix = s.encode_prompt(prompts[0]);
  for (size_t i : {1u, 3u}) {
    const auto t = s.encode_prompt(prompts[i]);
    size_t n = 0;
    while (n < std::min(prefix.size(), t.size()) && prefix[n] == t[n]) ++n;
    prefix.resize(n);
  }
  const int64_t L = static_cast<int64_t>(prefix.size());
  ASSERT_GE(L, 17);  // past two pages, and past the window of 8
  infer::GenerateStats ps;
  ASSERT_TRUE(s.keep_prefix(prefix, &ps).ok());
  EXPECT_EQ(ps.prompt_tokens, L);
  EXPECT_EQ(ps.reused_tokens, 0);
  for (size_t i = 0; i < prompts.size(); ++i) {
    SCOPED_TRACE("prompt " + std::to_string(i));
    infer::GenerateStats st;
    EXPECT_EQ(answer(s, prompts[i], &st), cold[i]);
    EXPECT_EQ(st.reused_tokens, i == 2 ? 0 : L);
    EXPECT_EQ(s.kept_prefix(), prefix);
  }
  // The pool holds the kept pages besides one sequence: both together never run it dry.
  EXPECT_LE(s.cache().pool().blocks() - s.cache().pool().free_blocks(), s.cache().pool().blocks());
}

}  // namespace
}  // namespace longctx
