#include "model/random_model.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "quant/formats.h"

namespace longctx::model {
namespace {

TEST(RandomModel, ParsesTheSpec) {
  auto s = parse_random_model("llama:layers=2,model_dim=64,heads=4,kv_heads=1,ff_dim=96,vocab=300,window=16,ctx=128,type=q4_1,seed=7");
  ASSERT_TRUE(s.ok()) << s.status().message();
  const ModelConfig& c = s->config;
  EXPECT_EQ(c.n_layers(), 2);
  EXPECT_EQ(c.model_dim, 64);
  EXPECT_EQ(c.layers[1].heads, 4);
  EXPECT_EQ(c.layers[1].kv_heads, 1);
  EXPECT_EQ(c.layers[1].head_dim, 16);
  EXPECT_EQ(c.layers[0].ff_dim, 96);
  EXPECT_EQ(c.vocab_size, 300);
  EXPECT_EQ(c.ctx, 128);
  EXPECT_EQ(attention::format_pattern(c.layers[0].pattern), "window:16");
  EXPECT_EQ(s->type, kQ4_1);
  EXPECT_EQ(s->seed, 7u);
  auto d = parse_random_model("llama");  // SmolLM2-135M's shape
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->config.n_layers(), 30);
  EXPECT_EQ(d->config.layers[0].kv_heads, 3);
  EXPECT_EQ(d->config.vocab_size, 49152);
}

TEST(RandomModel, RefusesBadSpecs) {
  for (const char* bad : {"gpt2:layers=2", "llama:layers", "llama:layers=x", "llama:depth=3", "llama:heads=5",
                          "llama:kv_heads=2", "llama:type=q3", "llama:layers=0", "llama:model_dim=48,heads=3",
                          "llama:layers=99999999999"}) {
    auto s = parse_random_model(bad);
    EXPECT_FALSE(s.ok()) << bad;
    if (!s.ok()) {
      EXPECT_NE(s.status().message().find("random model '"), std::string::npos) << s.status().message();
    }
  }
}

// The model reads its quantized matrices in place, counts them at their quantized size, and its
// cached decode equals its full forward (the same weights on both paths).
TEST(RandomModel, QuantizedInPlaceAndConsistent) {
  auto s = parse_random_model("llama:layers=2,model_dim=64,heads=4,kv_heads=2,ff_dim=128,vocab=256,ctx=64,type=q8_0");
  ASSERT_TRUE(s.ok());
  auto m = make_random_model(*s);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_TRUE((*m)->has_mapped_weights());
  int64_t expect = 0;
  for (const auto& t : (*m)->layout().tensors())
    expect += t.shape.size() == 2 ? quant::row_bytes(kQ8_0, t.shape[1]) * t.shape[0] : t.numel * 4;
  EXPECT_EQ((*m)->weight_bytes(), expect);

  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 12, V = 256;
  std::vector<int32_t> tokens(T);
  for (int64_t i = 0; i < T; ++i) tokens[i] = static_cast<int32_t>((i * 37 + 5) % V);
  std::vector<float> full(T * V), step(V);
  kvcache::KvCache prefill = *(*m)->make_cache(T);
  EXPECT_TRUE((*m)->forward_cached(pool, arena, prefill, tokens.data(), T, 0, full.data(), true).ok());
  kvcache::KvCache cache = *(*m)->make_cache(T);
  double worst = 0;
  for (int64_t i = 0; i < T; ++i) {
    EXPECT_TRUE((*m)->forward_cached(pool, arena, cache, &tokens[i], 1, i, step.data(), false).ok());
    float lo = full[i * V], hi = lo;
    for (int64_t j = 0; j < V; ++j) lo = std::min(lo, full[i * V + j]), hi = std::max(hi, full[i * V + j]);
    for (int64_t j = 0; j < V; ++j) worst = std::max(worst, double(std::fabs(step[j] - full[i * V + j]) / (hi - lo)));
  }
  // 12 rows of prefill take the integer tiles too (kDequant starts at 32 rows), which round x
  // as decode does: the two differ only in the order of fp32 additions.
  EXPECT_LT(worst, 1e-4) << worst;
}

}  // namespace
}  // namespace longctx::model

namespace longctx::model {
namespace {

// The memory plan is what the model then allocates: the KV cache exactly (the most blocks the
// cache holds while the context fills, the pool it gets), the scratch as the arena a prefill
// pass of ubatch tokens reserves.
TEST(MemoryPlan, MatchesTheAllocations) {
  auto s = parse_random_model("llama:layers=3,model_dim=64,heads=4,kv_heads=1,ff_dim=96,vocab=300,ctx=256,type=q4_0");
  ASSERT_TRUE(s.ok());
  auto m = make_random_model(*s);
  ASSERT_TRUE(m.ok());
  const int64_t ctx = 256, ubatch = 32;
  const auto planned = plan_memory((*m)->config(), (*m)->weight_bytes(), ctx, ubatch);
  ASSERT_TRUE(planned.ok());
  const MemoryPlan& plan = *planned;
  kvcache::KvCache cache = *(*m)->make_cache(ctx, {0, 0, ubatch});
  EXPECT_EQ((*m)->position_table_bytes(), 0);  // built by the first pass, after the memory check
  EXPECT_EQ(plan.kv, cache.pool().blocks() * cache.pool().block_bytes());
  EXPECT_EQ(plan.kv_per_token, 3 * 2 * 16 * 4);  // layers x (K, V) x kv_heads * head_dim x fp32
  EXPECT_EQ(plan.kv, plan.kv_per_token * ctx);   // full attention: every position, no waste
  ThreadPool pool(1);
  Arena arena;
  std::vector<int32_t> tokens(ubatch, 7);
  std::vector<float> logits(300);
  int64_t peak_blocks = 0;
  for (int64_t pos = 0; pos < ctx; pos += ubatch) {
    EXPECT_TRUE((*m)->forward_cached(pool, arena, cache, tokens.data(), ubatch, pos, logits.data(), false).ok());
    peak_blocks = std::max(peak_blocks, cache.blocks_held());
  }
  EXPECT_EQ(plan.kv, peak_blocks * cache.pool().block_bytes());
  // What a pass really used (the arena's high-water mark), not what it reserved from the plan.
  const double measured = double(arena.peak() + 300) * sizeof(float);  // + the caller's row of logits
  EXPECT_NEAR(double(plan.scratch), measured, 0.05 * measured) << plan.scratch << " planned, " << measured << " used";
  // The RoPE tables: none until the first pass, then what the plan says.
  EXPECT_EQ(plan.total(), plan.weights + plan.kv + plan.scratch + plan.positions);
  EXPECT_EQ(plan.positions, (*m)->position_table_bytes());
  EXPECT_EQ(plan.positions, ctx * 16 * int64_t(sizeof(float)));  // ctx x (cos, sin) x head_dim / 2
  // Far past the machine: a clear error before anything is allocated.
  MemoryPlan huge = plan;
  huge.kv = int64_t{1} << 50;
  const Status st = check_memory(huge);
  if (available_memory_bytes() > 0) {
    EXPECT_FALSE(st.ok());
    EXPECT_NE(st.message().find("KV cache"), std::string::npos) << st.message();
  }
}

}  // namespace
}  // namespace longctx::model
