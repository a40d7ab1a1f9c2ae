// Each layer's backward against central finite differences of its forward. The layers compute
// in fp32, so the objective L = sum(r * y) is accumulated in double and the step is sized for
// fp32 rounding; the tolerance is loose enough for that and tight enough to catch a wrong term
// (a missing factor, a transposed weight, a dropped residual all miss by more than 10%).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "layers/attention_block.h"
#include "layers/embedding.h"
#include "layers/feed_forward.h"
#include "position/alibi.h"

namespace longctx {
namespace {

std::vector<float> randv(int64_t n, Rng& r, double scale) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal() * scale);
  return v;
}

// Checks analytic gradient g of L w.r.t. the floats in x against central differences of L.
void check_fd(const char* what, std::vector<float>& x, const std::vector<float>& g,
              const std::function<double()>& loss, int stride = 1) {
  const float h = 1e-2f;
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    const float keep = x[i];
    x[i] = keep + h;
    const double lp = loss();
    x[i] = keep - h;
    const double lm = loss();
    x[i] = keep;
    const double fd = (lp - lm) / (2.0 * h);
    const double err = std::fabs(fd - g[i]) / (3e-2 + std::fabs(fd));
    worst = std::max(worst, err);
    EXPECT_LT(err, 2e-2) << what << "[" << i << "]: analytic " << g[i] << " vs finite difference " << fd;
  }
  SCOPED_TRACE(what);
}

struct AttnCase {
  model::PosType pos;
  int heads, kv_heads;
  bool bias;
};

class AttentionFd : public ::testing::TestWithParam<AttnCase> {};

TEST_P(AttentionFd, BackwardMatchesFiniteDifferences) {
  const AttnCase pc = GetParam();
  model::ModelConfig c;
  c.model_dim = 16;
  c.ctx = 16;
  c.pos = pc.pos;
  c.bias = pc.bias;
  c.norm = pc.bias ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  c.set_uniform_layers(1, model::LayerConfig{pc.heads, pc.kv_heads, 4, 32});
  ASSERT_TRUE(c.validate().ok());
  const model::LayerConfig& lc = c.layers[0];
  model::ParamLayout layout(c);
  Rng rng(5);
  std::vector<float> params = randv(layout.total(), rng, 0.5);
  std::vector<float> grads(layout.total(), 0.0f);
  const auto& o = layout.offsets().layers[0];
  for (int64_t i = 0; i < c.model_dim; ++i) params[o.attn_norm_w + i] += 1.0f;
  const int64_t B = 2, T = 7, rows = B * T, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0);
  ThreadPool pool(2);
  Arena arena(1 << 20);
  position::Rope rope(4, 10000.0f, c.ctx);
  std::vector<float> slopes = position::alibi_slopes(pc.heads);
  layers::LayerContext ctx{&c, &pool, &arena, &rope};
  const float* alibi = pc.pos == model::PosType::kAlibi ? slopes.data() : nullptr;
  std::vector<float> y(rows * D);
  auto loss = [&] {
    arena.reset();
    layers::attention_forward(ctx, lc, layers::AttentionParams<const float*>::at(params.data(), o), nullptr, alibi, x.data(), B,
                              T, 0, nullptr, y.data(), nullptr);
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  layers::AttentionSaved saved;
  layers::attention_forward(ctx, lc, layers::AttentionParams<const float*>::at(params.data(), o), nullptr, alibi, x.data(), B, T,
                            0, nullptr, y.data(), &saved);
  std::vector<float> dx = r;  // dL/dy = r, and the block's backward turns it into dL/dx
  layers::attention_backward(ctx, lc, layers::AttentionParams<const float*>::at(params.data(), o),
                             layers::AttentionParams<float*>::at(grads.data(), o), alibi, saved, B, T, dx.data());
  check_fd("x", x, dx, loss, 3);
  check_fd("params", params, grads, loss, 5);
}

INSTANTIATE_TEST_SUITE_P(Positions, AttentionFd,
                         ::testing::Values(AttnCase{model::PosType::kNone, 4, 4, true},
                                           AttnCase{model::PosType::kRope, 4, 2, false},
                                           AttnCase{model::PosType::kRope, 4, 1, true},
                                           AttnCase{model::PosType::kAlibi, 4, 2, false},
                                           AttnCase{model::PosType::kAlibi, 6, 3, true}));

class FeedForwardFd : public ::testing::TestWithParam<std::tuple<model::MlpType, bool>> {};

TEST_P(FeedForwardFd, BackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.model_dim = 12;
  c.mlp = std::get<0>(GetParam());
  c.bias = std::get<1>(GetParam());
  c.norm = c.bias ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  c.set_uniform_layers(1, model::LayerConfig{2, 2, 6, 20});
  model::ParamLayout layout(c);
  Rng rng(9);
  std::vector<float> params = randv(layout.total(), rng, 0.5);
  std::vector<float> grads(layout.total(), 0.0f);
  const auto& o = layout.offsets().layers[0];
  const int64_t rows = 5, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(2);
  Arena arena(1 << 18);
  layers::LayerContext ctx{&c, &pool, &arena, nullptr};
  auto P = [&] { return layers::FeedForwardParams<const float*>::at(params.data(), o); };
  auto loss = [&] {
    arena.reset();
    layers::feed_forward_forward(ctx, c.layers[0], P(), nullptr, x.data(), rows, y.data(), nullptr);
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  layers::FeedForwardSaved saved;
  layers::feed_forward_forward(ctx, c.layers[0], P(), nullptr, x.data(), rows, y.data(), &saved);
  std::vector<float> dx = r;
  layers::feed_forward_backward(ctx, c.layers[0], P(), layers::FeedForwardParams<float*>::at(grads.data(), o), saved,
                                rows, dx.data());
  check_fd("x", x, dx, loss, 2);
  check_fd("params", params, grads, loss, 3);
}

INSTANTIATE_TEST_SUITE_P(Mlps, FeedForwardFd,
                         ::testing::Combine(::testing::Values(model::MlpType::kGelu, model::MlpType::kSwiglu),
                                            ::testing::Bool()));

TEST(EmbeddingFd, LearnedPositionsBackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.vocab_size = 9;
  c.model_dim = 6;
  c.ctx = 8;
  c.pos = model::PosType::kLearned;
  c.set_uniform_layers(1, model::LayerConfig{2, 2, 3, 8});
  model::ParamLayout layout(c);
  Rng rng(4);
  std::vector<float> params = randv(layout.total(), rng, 1.0), grads(layout.total(), 0.0f);
  const auto& o = layout.offsets();
  const int64_t B = 2, T = 5, D = c.model_dim;
  std::vector<int32_t> tokens = {1, 3, 3, 0, 8, 2, 1, 1, 7, 3};  // repeats exercise accumulation
  std::vector<float> r = randv(B * T * D, rng, 1.0), x(B * T * D);
  ThreadPool pool(2);
  Arena arena;
  layers::LayerContext ctx{&c, &pool, &arena, nullptr};
  auto loss = [&] {
    layers::embedding_forward(ctx, {params.data() + o.token_embd, params.data() + o.position_embd}, nullptr, tokens.data(), B, T,
                              0, x.data());
    double L = 0;
    for (size_t i = 0; i < x.size(); ++i) L += double(r[i]) * x[i];
    return L;
  };
  layers::embedding_backward(ctx, {grads.data() + o.token_embd, grads.data() + o.position_embd}, tokens.data(), B, T, 0,
                             r.data());
  check_fd("embeddings", params, grads, loss, 1);
}

}  // namespace
}  // namespace longctx
