// Decoding token by token through the KV cache equals one full forward pass, for every
// positional scheme and head grouping, and with attention patterns and RoPE scaling;
// checkpoint save/load is exact.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "attention/pattern.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "position/rope.h"

namespace longctx {
namespace {

model::ModelConfig small_config(model::PosType pos, int kv_heads) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = 48;
  c.ctx = 40;
  c.pos = pos;
  c.norm = pos == model::PosType::kAlibi ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  c.mlp = pos == model::PosType::kLearned ? model::MlpType::kGelu : model::MlpType::kSwiglu;
  c.bias = pos == model::PosType::kLearned;
  c.set_uniform_layers(3, model::LayerConfig{6, kv_heads, 8, 96});
  return c;
}

struct Case {
  model::PosType pos;
  int kv_heads;
};

class KvCacheTest : public ::testing::TestWithParam<Case> {};

TEST_P(KvCacheTest, IncrementalDecodingEqualsFullForward) {
  const model::ModelConfig cfg = small_config(GetParam().pos, GetParam().kv_heads);
  ASSERT_TRUE(cfg.validate().ok());
  model::Model m(cfg);
  Rng rng(7);
  m.init(rng);
  // Larger weights than the init so attention is far from uniform and positions matter.
  for (int64_t i = 0; i < m.layout().total(); ++i) m.params()[i] *= 4.0f;
  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 37, V = cfg.vocab_size;
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  std::vector<float> full(T * V), step(V), chunk(T * V);
  m.forward_logits(pool, arena, tokens.data(), 1, T, full.data());
  arena.reset();

  kvcache::KvCache cache = *m.make_cache(cfg.ctx);
  double max_diff = 0;
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_TRUE(m.forward_cached(pool, arena, cache, &tokens[t], 1, t, step.data(), false).ok());
    for (int64_t v = 0; v < V; ++v) max_diff = std::max(max_diff, double(std::fabs(step[v] - full[t * V + v])));
  }
  EXPECT_LE(max_diff, 1e-4);

  // Chunked prefill: 10 tokens, then 27, all rows returned.
  kvcache::KvCache cache2 = *m.make_cache(cfg.ctx);
  EXPECT_TRUE(m.forward_cached(pool, arena, cache2, tokens.data(), 10, 0, chunk.data(), true).ok());
  EXPECT_TRUE(m.forward_cached(pool, arena, cache2, tokens.data() + 10, T - 10, 10, chunk.data() + 10 * V, true).ok());
  double chunk_diff = 0;
  for (int64_t i = 0; i < T * V; ++i) chunk_diff = std::max(chunk_diff, double(std::fabs(chunk[i] - full[i])));
  EXPECT_LE(chunk_diff, 1e-4);

  // An fp16 cache (K, V, or both): decoding and chunked prefill track the full fp32 pass; only
  // the cache's rounding differs. These weights are 4x the init (very peaked attention), which
  // magnifies fp16's 2^-11 rounding of K: 1e-2 of each row's logit range here (measured up to
  // 4.3e-3); SmolLM2 itself is held to 1e-3 (smollm2_test.cc).
  for (auto [kt, vt] : {std::pair<uint32_t, uint32_t>{1, 1}, {1, 0}, {0, 1}}) {
    SCOPED_TRACE("k_type " + std::to_string(kt) + " v_type " + std::to_string(vt));
    kvcache::KvCache c16 = *m.make_cache(cfg.ctx, kt, vt);
    double worst = 0;
    for (int64_t t = 0; t < T; ++t) {
      EXPECT_TRUE(m.forward_cached(pool, arena, c16, &tokens[t], 1, t, step.data(), false).ok());
      float lo = full[t * V], hi = lo;
      for (int64_t v = 0; v < V; ++v) lo = std::min(lo, full[t * V + v]), hi = std::max(hi, full[t * V + v]);
      for (int64_t v = 0; v < V; ++v) worst = std::max(worst, double(std::fabs(step[v] - full[t * V + v]) / (hi - lo)));
    }
    EXPECT_LE(worst, 1e-2);
    EXPECT_GT(worst, 0.0);  // the cache really was fp16
    kvcache::KvCache c16b = *m.make_cache(cfg.ctx, kt, vt);
    EXPECT_TRUE(m.forward_cached(pool, arena, c16b, tokens.data(), 10, 0, chunk.data(), true).ok());
    EXPECT_TRUE(m.forward_cached(pool, arena, c16b, tokens.data() + 10, T - 10, 10, chunk.data() + 10 * V, true).ok());
    double chunk16 = 0;
    for (int64_t t = 0; t < T; ++t) {
      float lo = full[t * V], hi = lo;
      for (int64_t v = 0; v < V; ++v) lo = std::min(lo, full[t * V + v]), hi = std::max(hi, full[t * V + v]);
      for (int64_t v = 0; v < V; ++v)
        chunk16 = std::max(chunk16, double(std::fabs(chunk[t * V + v] - full[t * V + v]) / (hi - lo)));
    }
    EXPECT_LE(chunk16, 1e-2);
  }
}

INSTANTIATE_TEST_SUITE_P(Schemes, KvCacheTest,
                         ::testing::Values(Case{model::PosType::kNone, 6}, Case{model::PosType::kLearned, 6},
                                           Case{model::PosType::kSinusoidal, 3}, Case{model::PosType::kRope, 2},
                                           Case{model::PosType::kRope, 1}, Case{model::PosType::kAlibi, 3}));

// Per-layer patterns (a window shorter than the sequence, BigBird with random blocks) and YaRN
// RoPE scaling: token-by-token decoding still equals the full pass.
TEST(KvCache, PatternsAndRopeScalingDecodeLikeTheFullPass) {
  model::ModelConfig cfg = small_config(model::PosType::kRope, 2);
  auto pats = attention::parse_pattern_list("window:5,bigbird:4,2,1,1,9,causal");
  ASSERT_TRUE(pats.ok()) << pats.status().message();
  for (int l = 0; l < cfg.n_layers(); ++l) cfg.layers[l].pattern = (*pats)[l % pats->size()];
  auto rs = position::parse_rope_scaling("yarn:4,10");
  ASSERT_TRUE(rs.ok());
  cfg.rope_scaling = *rs;
  ASSERT_TRUE(cfg.validate().ok()) << cfg.validate().message();
  model::Model m(cfg);
  Rng rng(9);
  m.init(rng);
  for (int64_t i = 0; i < m.layout().total(); ++i) m.params()[i] *= 4.0f;
  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 37, V = cfg.vocab_size;
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  std::vector<float> full(T * V), step(V);
  m.forward_logits(pool, arena, tokens.data(), 1, T, full.data());
  arena.reset();
  kvcache::KvCache cache = *m.make_cache(cfg.ctx);
  double max_diff = 0;
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_TRUE(m.forward_cached(pool, arena, cache, &tokens[t], 1, t, step.data(), false).ok());
    for (int64_t v = 0; v < V; ++v) max_diff = std::max(max_diff, double(std::fabs(step[v] - full[t * V + v])));
  }
  EXPECT_LE(max_diff, 1e-4);
}

TEST(Checkpoint, SaveLoadIsExact) {
  model::ModelConfig cfg = small_config(model::PosType::kRope, 2);
  tokenizer::TrainOptions topt;
  topt.vocab_size = 300;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  cfg.vocab_size = tok->vocab_size();
  model::Model m(cfg);
  Rng rng(3);
  m.init(rng);
  const std::string path = ::testing::TempDir() + "/ckpt_exact.gguf";
  ASSERT_TRUE(model::save_checkpoint(path, m, *tok).ok());
  auto loaded = model::load_checkpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const model::ModelConfig& c2 = loaded->model->config();
  EXPECT_EQ(c2.vocab_size, cfg.vocab_size);
  EXPECT_EQ(c2.model_dim, cfg.model_dim);
  EXPECT_EQ(c2.n_layers(), cfg.n_layers());
  EXPECT_EQ(c2.layers[0].kv_heads, 2);
  EXPECT_EQ(c2.pos, cfg.pos);
  ASSERT_EQ(loaded->model->layout().total(), m.layout().total());
  EXPECT_EQ(0, std::memcmp(loaded->model->params(), m.params(), m.layout().total() * sizeof(float)));
  EXPECT_EQ(loaded->tokenizer.encode(text), tok->encode(text));
  std::filesystem::remove(path);
}

// Writes a checkpoint of `m` by hand so single keys or tensors can be damaged.
Status write_damaged(const std::string& path, const model::Model& m, const tokenizer::BpeTokenizer& tok,
                     bool extra_key, bool bad_shape) {
  io::GgufWriter w;
  model::write_config_keys(w, m.config());
  model::write_tokenizer_keys(w, tok);
  if (extra_key) w.set_bool("longctx.colt5.enabled", true);
  for (const auto& t : m.layout().tensors()) {
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (bad_shape && t.name == "blk.1.attn_k.weight") std::swap(dims[0], dims[1]);
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, 0, m.params() + t.offset, t.numel * sizeof(float)));
  }
  return w.write(path);
}

TEST(Checkpoint, RejectsInconsistentShapesAndUnknownRequiredKeys) {
  model::ModelConfig cfg = small_config(model::PosType::kRope, 2);
  tokenizer::TrainOptions topt;
  topt.vocab_size = 270;
  std::string text;
  for (int i = 0; i < 50; ++i) text += "abc abd abe " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok());
  cfg.vocab_size = tok->vocab_size();
  model::Model m(cfg);
  const std::string path = ::testing::TempDir() + "/ckpt_damaged.gguf";
  ASSERT_TRUE(write_damaged(path, m, *tok, false, true).ok());
  auto a = model::load_checkpoint(path);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("blk.1.attn_k.weight"), std::string::npos) << a.status().message();
  EXPECT_NE(a.status().message().find("inconsistent"), std::string::npos) << a.status().message();
  ASSERT_TRUE(write_damaged(path, m, *tok, true, false).ok());
  auto b = model::load_checkpoint(path);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("unknown required key 'longctx.colt5.enabled'"), std::string::npos)
      << b.status().message();
  ASSERT_TRUE(write_damaged(path, m, *tok, false, false).ok());
  EXPECT_TRUE(model::load_checkpoint(path).ok());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace longctx
