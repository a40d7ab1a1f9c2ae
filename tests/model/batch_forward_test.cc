// Model::forward_batch (several sequences in one pass, the server's step): every sequence's
// logits equal those of the same tokens run alone through forward_cached (prompt chunks of the
// same size, then one token at a time), whatever runs beside it: sequences join at different
// steps, prompt chunks share passes with other sequences' single tokens. Bit for bit on
// SmolLM2-135M Q4_1 read in place (the integer, AMX and dequantizing qmatmul paths), also with
// its matrices packed for the AMX tiles (Q8_0 head included); within 1e-5 of the logit range on
// a random fp32 model (OpenBLAS products; window and causal layers, GQA).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "attention/pattern.h"
#include "core/rng.h"
#include "model/config_overrides.h"
#include "model/model.h"
#include "model/pretrained.h"

namespace longctx {
namespace {

struct Seq {
  std::vector<int32_t> tokens;  // prompt, then the tokens fed one at a time
  int64_t prompt = 0;
};

// The pass sizes of a sequence run alone: the prompt in chunks of ubatch, then single tokens.
std::vector<int64_t> pass_sizes(const Seq& s, int64_t ubatch) {
  std::vector<int64_t> out;
  for (int64_t p = 0; p < s.prompt; p += std::min(ubatch, s.prompt - p)) out.push_back(std::min(ubatch, s.prompt - p));
  for (int64_t t = s.prompt; t < static_cast<int64_t>(s.tokens.size()); ++t) out.push_back(1);
  return out;
}

// Logits after every pass of every sequence, each sequence alone.
std::vector<std::vector<float>> run_alone(model::Model& m, const std::vector<Seq>& seqs, int64_t ubatch,
                                          int64_t capacity) {
  ThreadPool pool(2);
  Arena arena;
  const int64_t V = m.config().vocab_size;
  std::vector<std::vector<float>> out(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    kvcache::KvCache cache = *m.make_cache(capacity);
    int64_t pos = 0;
    for (int64_t n : pass_sizes(seqs[i], ubatch)) {
      std::vector<float> logits(V);
      EXPECT_TRUE(m.forward_cached(pool, arena, cache, seqs[i].tokens.data() + pos, n, pos, logits.data(), false).ok());
      out[i].insert(out[i].end(), logits.begin(), logits.end());
      pos += n;
    }
  }
  return out;
}

// The same passes, all sequences together: sequence i joins at step i, and every step runs one
// pass of every sequence that has one left, single tokens first (as the server orders them).
std::vector<std::vector<float>> run_together(model::Model& m, const std::vector<Seq>& seqs, int64_t ubatch,
                                             int64_t capacity) {
  ThreadPool pool(2);
  Arena arena;
  const int64_t V = m.config().vocab_size;
  kvcache::KvCache first = *m.make_cache(capacity, model::Model::CacheOptions{0, 0, 0, static_cast<int64_t>(seqs.size())});
  std::vector<kvcache::KvCache> caches;
  for (size_t i = 0; i < seqs.size(); ++i) caches.push_back(first.fork(0));  // one shared pool
  std::vector<std::vector<int64_t>> sizes;
  for (const Seq& s : seqs) sizes.push_back(pass_sizes(s, ubatch));
  std::vector<size_t> next(seqs.size(), 0);
  std::vector<int64_t> pos(seqs.size(), 0);
  std::vector<std::vector<float>> out(seqs.size());
  for (size_t step = 0;; ++step) {
    std::vector<model::Model::SeqStep> steps;
    std::vector<size_t> who;
    for (int single = 1; single >= 0; --single)
      for (size_t i = 0; i < seqs.size() && i <= step; ++i) {
        if (next[i] >= sizes[i].size()) continue;
        const int64_t n = sizes[i][next[i]];
        if ((n == 1) != (single == 1)) continue;
        steps.push_back({&caches[i], seqs[i].tokens.data() + pos[i], n, pos[i]});
        who.push_back(i);
      }
    if (steps.empty()) {
      if (step >= seqs.size()) break;
      continue;
    }
    std::vector<float> logits(steps.size() * V);
    EXPECT_TRUE(m.forward_batch(pool, arena, steps, logits.data()).ok());
    for (size_t j = 0; j < who.size(); ++j) {
      out[who[j]].insert(out[who[j]].end(), logits.begin() + j * V, logits.begin() + (j + 1) * V);
      pos[who[j]] += steps[j].n;
      ++next[who[j]];
    }
  }
  return out;
}

// bound 0: bit for bit; otherwise the worst |difference| relative to the row's logit range.
void expect_same(model::Model& m, const std::vector<Seq>& seqs, int64_t ubatch, int64_t capacity, double bound) {
  const auto alone = run_alone(m, seqs, ubatch, capacity);
  const auto together = run_together(m, seqs, ubatch, capacity);
  const int64_t V = m.config().vocab_size;
  double worst_all = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    ASSERT_EQ(alone[i].size(), together[i].size()) << "sequence " << i;
    for (size_t p = 0; p < alone[i].size() / V; ++p) {
      const float* a = alone[i].data() + p * V;
      const float* b = together[i].data() + p * V;
      const auto [lo, hi] = std::minmax_element(a, a + V);
      int64_t differ = 0;
      double worst = 0;
      for (int64_t v = 0; v < V; ++v)
        if (std::memcmp(a + v, b + v, sizeof(float)) != 0)
          ++differ, worst = std::max(worst, std::fabs(double(a[v]) - b[v]) / (*hi - *lo));
      worst_all = std::max(worst_all, worst);
      if (bound == 0)
        EXPECT_EQ(differ, 0) << "sequence " << i << " pass " << p << ": " << differ << " logits differ, worst by "
                             << worst << " of the range";
      else
        EXPECT_LE(worst, bound) << "sequence " << i << " pass " << p;
    }
  }
  std::printf("worst difference: %.3g of a row's logit range\n", worst_all);
}

std::vector<Seq> make_seqs(const std::vector<std::pair<int64_t, int64_t>>& shapes, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  std::vector<Seq> seqs;
  for (auto [prompt, decode] : shapes) {
    Seq s;
    s.prompt = prompt;
    for (int64_t t = 0; t < prompt + decode; ++t) s.tokens.push_back(static_cast<int32_t>(rng.below(vocab)));
    seqs.push_back(std::move(s));
  }
  return seqs;
}

TEST(ForwardBatch, RandomFp32ModelEqualsEachSequenceAlone) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = 64;
  c.ctx = 96;
  c.set_uniform_layers(4, model::LayerConfig{4, 2, 32, 96});
  auto pats = attention::parse_pattern_list("window:8,causal");
  ASSERT_TRUE(pats.ok());
  for (int l = 0; l < c.n_layers(); ++l) c.layers[l].pattern = (*pats)[l % pats->size()];
  ASSERT_TRUE(c.validate().ok());
  model::Model m(c);
  Rng rng(3);
  m.init(rng);
  // Prompts of 1 to 70 tokens in chunks of 32, 3 to 20 tokens after. fp32 weights go through
  // OpenBLAS, whose sgemm rounds a row differently with the number of rows beside it (its
  // small-matrix kernels): a few units in the last place, bounded here; the server's quantized
  // models are exact (below).
  expect_same(m, make_seqs({{5, 20}, {70, 6}, {1, 12}, {33, 3}, {32, 9}, {17, 17}}, c.vocab_size, 7), 32, c.ctx,
              1e-5);
}

// CoLT5's routed blocks: each sequence's routed attention reads and writes its own compact
// slot and window ring within the shared pass.
TEST(ForwardBatch, RoutedAttentionModelEqualsEachSequenceAlone) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = 64;
  c.ctx = 96;
  c.set_uniform_layers(3, model::LayerConfig{4, 2, 16, 96});
  ASSERT_TRUE(model::apply_colt5("ffn=light:16,route:1/4;attn=window:6,light_heads:2,route_q:1/3,route_kv:1/2", &c).ok());
  model::Model m(c);
  Rng rng(5);
  m.init(rng);
  for (const auto& t : m.layout().tensors())  // larger weights: the routers' scores spread out
    if (t.init != layers::Init::kValue)
      for (int64_t i = 0; i < t.numel; ++i) m.params()[t.offset + i] *= 4.0f;
  expect_same(m, make_seqs({{5, 20}, {70, 6}, {1, 12}, {33, 3}, {32, 9}}, c.vocab_size, 7), 32, c.ctx, 1e-5);
}

// packed: the matrices also packed for the AMX tiles (as `serve` does); integer_prefill: prompt
// rows on the integer tiles too (Model::set_integer_prefill, as generate, chat and serve run),
// so a step's rows, prompt chunks included, share one product per matrix. Where the CPU has no
// AMX neither takes effect and the run repeats the plain one.
void smollm2_equals_each_sequence_alone(bool packed, bool integer_prefill = false) {
  const std::string path = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run `bash scripts/fetch_model.sh`";
  model::LoadOptions lo;
  lo.keep_quantized = true;
  lo.ctx = 256;
  auto loaded = model::load_model(path, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model::Model& m = *loaded->model;
  ASSERT_TRUE(m.has_mapped_weights());
  if (packed) {
    ThreadPool pool(2);
    std::printf("packed for the AMX tiles: %.1f MiB\n", m.pack_for_batches(pool) / 1048576.0);
  }
  if (integer_prefill) std::printf("prompts on the integer tiles: %d\n", m.set_integer_prefill(true));
  expect_same(m, make_seqs({{40, 6}, {3, 10}, {100, 4}, {31, 8}, {1, 8}, {64, 3}, {12, 5}, {7, 7}},
                           m.config().vocab_size, 9),
              64, 256, 0.0);
}

TEST(ForwardBatch, SmolLM2QuantizedEqualsEachSequenceAlone) { smollm2_equals_each_sequence_alone(false); }

TEST(ForwardBatch, SmolLM2PackedEqualsEachSequenceAlone) { smollm2_equals_each_sequence_alone(true); }

TEST(ForwardBatch, SmolLM2IntegerPrefillEqualsEachSequenceAlone) { smollm2_equals_each_sequence_alone(true, true); }

// With the integer prefill (products and attention row by row), a row's results do not depend on
// the pass that computes it: a prompt continuing a prefix another sequence computed (forked at
// any token, as the server shares prefixes), and tokens decoded one at a time against the same
// tokens as one prompt chunk, give the logits of the whole prompt run alone, bit for bit. (The
// int8 activations make this matter: a last-place difference that moves one rounding moves the
// logits by tenths.)
TEST(ForwardBatch, SmolLM2IntegerPrefillRowsDoNotDependOnThePass) {
  const std::string path = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(std::filesystem::exists(path)) << path << " is missing: run `bash scripts/fetch_model.sh`";
  model::LoadOptions lo;
  lo.ctx = 512;
  auto loaded = model::load_model(path, lo);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model::Model& m = *loaded->model;
  if (!m.set_integer_prefill(true)) GTEST_SKIP() << "no AMX: the prompt products are the exact fp32 ones";
  ThreadPool& pool = ThreadPool::global();
  const int64_t V = m.config().vocab_size;
  Arena arena;
  auto fresh = [&] {
    auto c = m.make_cache(512, {0, 0, 512, 4, kvcache::kDefaultPageRows, 0});
    EXPECT_TRUE(c.ok());
    return std::move(*c);
  };
  Rng rng(21);
  auto tokens = [&](int64_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(100 + rng.next() % 40000);
    return t;
  };
  int cases = 0;
  for (int64_t c : {5, 37, 256, 300})
    for (int64_t ta : {1, 40})
      for (int64_t tb : {1, 6, 40}) {
        SCOPED_TRACE("prefix " + std::to_string(c) + ", then " + std::to_string(ta) + " / " + std::to_string(tb));
        std::vector<int32_t> a = tokens(c + ta), b = a;
        b.resize(c + tb);
        for (int64_t i = c; i < c + tb; ++i) b[i] = a[std::min(i, c + ta - 1)] + 1 + static_cast<int32_t>(i - c);
        std::vector<float> alone(V), forked(V), scratch(V);
        kvcache::KvCache cb = fresh();
        ASSERT_TRUE(m.forward_cached(pool, arena, cb, b.data(), c + tb, 0, alone.data(), false).ok());
        kvcache::KvCache ca = fresh();
        ASSERT_TRUE(m.forward_cached(pool, arena, ca, a.data(), c + ta, 0, scratch.data(), false).ok());
        kvcache::KvCache cf = ca.fork(c);
        ASSERT_TRUE(m.forward_cached(pool, arena, cf, b.data() + c, tb, c, forked.data(), false).ok());
        EXPECT_EQ(std::memcmp(alone.data(), forked.data(), V * sizeof(float)), 0);
        ++cases;
      }
  // 20 prompt tokens, then 40 decoded one at a time, against all 60 as one prompt.
  const std::vector<int32_t> t = tokens(60);
  std::vector<float> whole(V), stepped(V);
  kvcache::KvCache cw = fresh(), cs = fresh();
  ASSERT_TRUE(m.forward_cached(pool, arena, cw, t.data(), 60, 0, whole.data(), false).ok());
  ASSERT_TRUE(m.forward_cached(pool, arena, cs, t.data(), 20, 0, stepped.data(), false).ok());
  for (int64_t i = 20; i < 60; ++i)
    ASSERT_TRUE(m.forward_cached(pool, arena, cs, t.data() + i, 1, i, stepped.data(), false).ok());
  EXPECT_EQ(std::memcmp(whole.data(), stepped.data(), V * sizeof(float)), 0);
  std::printf("%d forks, and one decoded run, bit for bit\n", cases);
}

}  // namespace
}  // namespace longctx
