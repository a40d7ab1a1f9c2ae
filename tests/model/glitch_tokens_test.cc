// Glitch tokens: SmolLM2-135M Q4_1 (read in place, as the server runs it) gives finite logits for
// every token id of its vocabulary as a one-token prompt, for 3,000 random id sequences and for
// random byte strings through the tokenizer: no NaN, no infinity, no crash. The random sequences
// go through Model::forward_batch (the server's step) with a KV cache per sequence.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "model/pretrained.h"

namespace longctx {
namespace {

const std::string kModel = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Fixture {
  std::optional<model::LoadedModel> lm;
  ThreadPool pool{ThreadPool::global().threads()};
  Arena arena;
  Fixture() {
    model::LoadOptions lo;
    lo.ctx = 64;
    auto l = model::load_model(kModel, lo);
    if (l.ok()) lm.emplace(std::move(*l));
  }
};

// Index of the first non-finite value, or -1.
int64_t first_bad(const float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(x[i])) return i;
  return -1;
}

TEST(GlitchTokens, EveryTokenIdAloneGivesFiniteLogits) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel << " is missing: run `bash scripts/fetch_model.sh`";
  Fixture f;
  ASSERT_TRUE(f.lm);
  model::Model& m = *f.lm->model;
  const int64_t V = m.config().vocab_size, B = 256;
  std::vector<float> logits(B * V);
  std::vector<int32_t> ids(B);
  int64_t bad = 0;
  for (int64_t t0 = 0; t0 < V; t0 += B) {
    const int64_t n = std::min(B, V - t0);
    for (int64_t i = 0; i < n; ++i) ids[i] = static_cast<int32_t>(t0 + i);
    // n sequences of one token each (batch n, seq_len 1).
    f.arena.reset();
    m.forward_logits(f.pool, f.arena, ids.data(), n, 1, logits.data());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t at = first_bad(logits.data() + i * V, V);
      if (at >= 0 && ++bad <= 10) ADD_FAILURE() << "token " << t0 + i << ": logit " << at << " is not finite";
    }
  }
  EXPECT_EQ(bad, 0);
}

TEST(GlitchTokens, RandomSequencesAndByteStringsGiveFiniteLogits) {
  ASSERT_TRUE(std::filesystem::exists(kModel)) << kModel << " is missing: run `bash scripts/fetch_model.sh`";
  Fixture f;
  ASSERT_TRUE(f.lm);
  model::Model& m = *f.lm->model;
  const tokenizer::BpeTokenizer& tok = f.lm->tokenizer;
  const int64_t V = m.config().vocab_size;
  Rng rng(2026);
  // 3,000 random id sequences of 1 to 6 tokens, then 2,000 random byte strings of 1 to 24
  // bytes tokenized (at most the context), each run as a sequence of its own, 64 per step.
  std::vector<std::vector<int32_t>> seqs;
  for (int i = 0; i < 3000; ++i) {
    std::vector<int32_t> s(1 + rng.below(6));
    for (auto& t : s) t = static_cast<int32_t>(rng.below(V));
    seqs.push_back(std::move(s));
  }
  for (int i = 0; i < 2000; ++i) {
    std::string bytes(1 + rng.below(24), '\0');
    for (auto& c : bytes) c = static_cast<char>(rng.below(256));
    std::vector<int32_t> s = tok.encode(bytes);
    if (s.empty()) continue;
    if (static_cast<int64_t>(s.size()) > m.config().ctx) s.resize(m.config().ctx);
    for (int32_t t : s) ASSERT_TRUE(t >= 0 && t < V) << "the tokenizer gave id " << t;
    seqs.push_back(std::move(s));
  }
  constexpr size_t kStep = 64;
  kvcache::KvCache root = *m.make_cache(m.config().ctx, model::Model::CacheOptions{0, 0, 0, kStep});
  std::vector<kvcache::KvCache> caches;
  for (size_t i = 0; i < kStep; ++i) caches.push_back(root.fork(0));
  std::vector<float> logits(kStep * V);
  int64_t bad = 0;
  for (size_t s0 = 0; s0 < seqs.size(); s0 += kStep) {
    std::vector<model::Model::SeqStep> steps;
    for (size_t i = s0; i < std::min(seqs.size(), s0 + kStep); ++i)
      steps.push_back({&caches[i - s0], seqs[i].data(), static_cast<int64_t>(seqs[i].size()), 0});
    ASSERT_TRUE(m.forward_batch(f.pool, f.arena, steps, logits.data()).ok());
    for (size_t j = 0; j < steps.size(); ++j) {
      const int64_t at = first_bad(logits.data() + j * V, V);
      if (at >= 0 && ++bad <= 10) ADD_FAILURE() << "sequence " << s0 + j << ": logit " << at << " is not finite";
    }
  }
  EXPECT_EQ(bad, 0);
}

}  // namespace
}  // namespace longctx
