// Each layer's backward against central finite differences of its forward. The layers compute
// in fp32, so the objective L = sum(r * y) is accumulated in double and the step is sized for
// fp32 rounding; the tolerance is loose enough for that and tight enough to catch a wrong term
// (a missing factor, a transposed weight, a dropped residual all miss by more than 10%).
// One thread: a check makes thousands of forwards of a few microseconds each, and with a second
// thread each waits for a worker that, while CTest runs another multi-threaded test beside it,
// the scheduler may not run for milliseconds (the routed-attention cases took 1 s alone, 45-67 s
// beside another run of themselves). The same layers run on two threads in the model tests
// (colt5_test, attention_test), and results across thread counts are compared in
// TiledVsReference and attention_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "layers/block.h"
#include "layers/embedding.h"
#include "layers/norm.h"
#include "layers/router.h"
#include "model/params.h"

namespace longctx {
namespace {

std::vector<float> randv(int64_t n, Rng& r, double scale) {
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal() * scale);
  return v;
}

// Checks analytic gradient g of L w.r.t. the floats in x against central differences of L.
void check_fd(const char* what, std::vector<float>& x, const std::vector<float>& g,
              const std::function<double()>& loss, int stride = 1, const std::vector<int64_t>& skip = {}) {
  // Central differences at h and h / 2 combined (Richardson: (4 D(h/2) - D(h)) / 3) cancel the
  // h^2 term, which post-norm blocks (a LayerNorm after the residual sum) make large; h = 2e-2
  // keeps fp32 rounding of the loss small beside the differences.
  const float h = 2e-2f;
  auto central = [&](size_t i, float step) {
    const float keep = x[i];
    x[i] = keep + step;
    const double lp = loss();
    x[i] = keep - step;
    const double lm = loss();
    x[i] = keep;
    return (lp - lm) / (2.0 * static_cast<double>(step));
  };
  double worst = 0;
  for (size_t i = 0; i < x.size(); i += stride) {
    if (std::find(skip.begin(), skip.end(), static_cast<int64_t>(i)) != skip.end()) continue;
    const double fd = (4.0 * central(i, h / 2) - central(i, h)) / 3.0;
    const double err = std::fabs(fd - g[i]) / (3e-2 + std::fabs(fd));
    worst = std::max(worst, err);
    EXPECT_LT(err, 2e-2) << what << "[" << i << "]: analytic " << g[i] << " vs finite difference " << fd;
  }
  SCOPED_TRACE(what);
}

// One block made by its kind's factory, with its declared tensors in a flat buffer of its own
// (offsets as the model lays them out: 16-float aligned), driven through the Block interface.
struct BlockUnderTest {
  std::unique_ptr<layers::Block> block;
  std::vector<float> params, grads;
  std::vector<int64_t> offsets;

  BlockUnderTest(const std::string& kind, const layers::Settings& s, const layers::LayerConfig& lc,
                 const std::string& args = "") {
    auto b = layers::make_block({kind, args}, layers::BlockEnv{s, lc, 0, args});
    CHECK(b.ok());
    block = std::move(*b);
    int64_t total = 0;
    for (const auto& t : block->tensors()) {
      int64_t n = 1;
      for (int64_t d : t.shape) n *= d;
      offsets.push_back(total);
      total += (n + 15) & ~int64_t(15);
    }
    block->bind(offsets, 0);
    params.assign(total, 0.0f);
    grads.assign(total, 0.0f);
  }
  float* param(const std::string& name) {
    for (size_t i = 0; i < offsets.size(); ++i)
      if (block->tensors()[i].name == name) return params.data() + offsets[i];
    return nullptr;
  }
  layers::Weights weights() { return {params.data(), grads.data(), nullptr}; }
  // The block's tensors taken from the flat buffer of the one-layer model c (the values a whole
  // model of that config drawn at random would give them).
  void fill_from_model(const model::ModelConfig& c, const std::vector<float>& model_params) {
    const model::ParamLayout layout(c);
    for (size_t i = 0; i < offsets.size(); ++i) {
      const model::ParamTensor* t = layout.find("blk.0." + block->tensors()[i].name);
      CHECK(t);
      std::copy_n(model_params.data() + t->offset, t->numel, params.data() + offsets[i]);
    }
  }
};

struct AttnCase {
  model::PosType pos;
  int heads, kv_heads;
  bool bias;
  bool post_norm = false;  // BERT's layer: LN(x + attention(x)), attending to every key
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
  const std::string args = pc.post_norm ? "post_norm" : "";
  if (pc.post_norm) {
    c.encoder = true;
    c.layers[0].pattern = attention::Full{};
    c.layers[0].blocks = {{"attention", args}, {"feed_forward", args}};
  }
  ASSERT_TRUE(c.validate().ok());
  const layers::Settings settings = c.settings();
  BlockUnderTest b("attention", settings, c.layers[0], args);
  Rng rng(5);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  std::vector<float>& params = b.params;
  for (int64_t i = 0; i < c.model_dim; ++i) b.param(pc.post_norm ? "attn_output_norm.weight" : "attn_norm.weight")[i] += 1.0f;
  const int64_t B = 2, T = 7, rows = B * T, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0);
  ThreadPool pool(1);
  Arena arena(1 << 20);
  position::Rope rope(4, 10000.0f, c.ctx);
  layers::LayerContext ctx{&settings, &pool, &arena, &rope};
  layers::Pass pass;
  pass.batch = B;
  pass.seq_len = T;
  std::vector<float> y(rows * D);
  auto loss = [&] {
    arena.reset();
    layers::Pass p = pass;
    b.block->forward(ctx, b.weights(), p, x.data(), y.data());
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  EXPECT_LE(arena.used(), b.block->forward_floats(pass));
  const int64_t before = (arena.used() + 15) & ~int64_t(15);  // the next allocation's start
  std::vector<float> dx = r;  // dL/dy = r, and the block's backward turns it into dL/dx
  b.block->backward(ctx, b.weights(), pass, dx.data());
  EXPECT_LE(arena.used() - before, b.block->backward_floats(pass));
  pass.save = false;
  check_fd("x", x, dx, loss, 3);
  check_fd("params", params, b.grads, loss, 5);
}

INSTANTIATE_TEST_SUITE_P(Positions, AttentionFd,
                         ::testing::Values(AttnCase{model::PosType::kNone, 4, 4, true},
                                           AttnCase{model::PosType::kRope, 4, 2, false},
                                           AttnCase{model::PosType::kRope, 4, 1, true},
                                           AttnCase{model::PosType::kAlibi, 4, 2, false},
                                           AttnCase{model::PosType::kAlibi, 6, 3, true},
                                           AttnCase{model::PosType::kLearned, 4, 4, true, true},
                                           AttnCase{model::PosType::kRope, 4, 2, true, true}));

// (mlp, biases, post-norm)
class FeedForwardFd : public ::testing::TestWithParam<std::tuple<model::MlpType, bool, bool>> {};

TEST_P(FeedForwardFd, BackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.model_dim = 12;
  c.mlp = std::get<0>(GetParam());
  c.bias = std::get<1>(GetParam());
  c.norm = c.bias ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  c.set_uniform_layers(1, model::LayerConfig{2, 2, 6, 20});
  const std::string args = std::get<2>(GetParam()) ? "post_norm" : "";
  c.layers[0].blocks = {{"attention", args}, {"feed_forward", args}};
  const layers::Settings settings = c.settings();
  BlockUnderTest b("feed_forward", settings, c.layers[0], args);
  Rng rng(9);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  std::vector<float>& params = b.params;
  const int64_t rows = 5, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(1);
  Arena arena(1 << 18);
  layers::LayerContext ctx{&settings, &pool, &arena, nullptr};
  layers::Pass pass;
  pass.seq_len = rows;
  auto loss = [&] {
    arena.reset();
    b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  EXPECT_LE(arena.used(), b.block->forward_floats(pass));
  std::vector<float> dx = r;
  b.block->backward(ctx, b.weights(), pass, dx.data());
  pass.save = false;
  check_fd("x", x, dx, loss, 2);
  check_fd("params", params, b.grads, loss, 3);
}

INSTANTIATE_TEST_SUITE_P(Mlps, FeedForwardFd,
                         ::testing::Combine(::testing::Values(model::MlpType::kGelu, model::MlpType::kSwiglu,
                                                              model::MlpType::kGeluErf),
                                            ::testing::Bool(), ::testing::Bool()));

// CoLT5's routed feed-forward: light branch, heavy branch on the routed rows, router (through the
// gate). The threshold is placed in the widest gap of the scores so no finite-difference step
// changes which rows are routed (the routing itself is a step function). (mlp, biases, light)
class RoutedFeedForwardFd : public ::testing::TestWithParam<std::tuple<model::MlpType, bool, bool>> {};

TEST_P(RoutedFeedForwardFd, BackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.model_dim = 12;
  c.mlp = std::get<0>(GetParam());
  c.bias = std::get<1>(GetParam());
  c.norm = c.bias ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  const std::string args = std::get<2>(GetParam()) ? "light=6,heavy=20,route=1/4" : "light=0,heavy=20,route=1/4";
  c.set_uniform_layers(1, model::LayerConfig{2, 2, 6, 20});
  c.layers[0].blocks = {{"attention", ""}, {"routed_feed_forward", args}};
  ASSERT_TRUE(c.validate().ok());
  const layers::Settings settings = c.settings();
  BlockUnderTest b("routed_feed_forward", settings, c.layers[0], args);
  Rng rng(13);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  const int64_t rows = 10, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(1);
  Arena arena(1 << 18);
  layers::LayerContext ctx{&settings, &pool, &arena, nullptr};
  layers::Pass pass;
  pass.seq_len = rows;
  // The scores z of the rows (normed input . u / |u|), sorted; tau in the widest gap between the
  // 2nd and 7th largest.
  std::vector<double> z;
  {
    std::vector<float> h(rows * D), mean(rows), rstd(rows);
    layers::norm_forward(ctx, {b.param("ffn_norm.weight"), b.param("ffn_norm.bias")}, x.data(), rows, h.data(),
                         mean.data(), rstd.data());
    const float* u = b.param("ffn_router.weight");
    double nu = 0;
    for (int64_t k = 0; k < D; ++k) nu += double(u[k]) * u[k];
    for (int64_t i = 0; i < rows; ++i) {
      double d = 0;
      for (int64_t k = 0; k < D; ++k) d += double(h[i * D + k]) * u[k];
      z.push_back(d / std::sqrt(nu));
    }
    std::sort(z.rbegin(), z.rend());
  }
  int best = 1;
  for (int i = 1; i < 6; ++i)
    if (z[i] - z[i + 1] > z[best] - z[best + 1]) best = i;
  ASSERT_GT(z[best] - z[best + 1], 0.05) << "no clear gap in the scores";
  *b.param("ffn_router.threshold") = static_cast<float>(0.5 * (z[best] + z[best + 1]));
  const int64_t routed = best + 1;
  auto loss = [&] {
    arena.reset();
    b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
    EXPECT_EQ(b.block->take_route_counts().at(0).routed, routed) << "a step changed the routing";
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  EXPECT_LE(arena.used(), b.block->forward_floats(pass));
  const auto counts = b.block->take_route_counts();
  ASSERT_EQ(counts.size(), 1u);
  EXPECT_EQ(counts[0].routed, routed);
  EXPECT_EQ(counts[0].considered, rows);
  const int64_t before = (arena.used() + 15) & ~int64_t(15);
  std::vector<float> dx = r;
  b.block->backward(ctx, b.weights(), pass, dx.data());
  EXPECT_LE(arena.used() - before, b.block->backward_floats(pass));
  pass.save = false;
  // The threshold's gradient is its moving average's (layers/router.h), not the block output's:
  // rate * (tau - the batch quantile), the quantile between the 2nd and 3rd largest of 10 scores
  // for a 1/4 fraction (round(2.5) = 3: 3rd and 4th).
  float* tau = b.param("ffn_router.threshold");
  float* dtau = b.grads.data() + (tau - b.params.data());
  EXPECT_NEAR(*dtau, layers::kThresholdRate * (*tau - 0.5 * (z[2] + z[3])), 1e-6);
  check_fd("x", x, dx, loss, 1);
  check_fd("params", b.params, b.grads, loss, 1, {tau - b.params.data()});
}

INSTANTIATE_TEST_SUITE_P(Mlps, RoutedFeedForwardFd,
                         ::testing::Combine(::testing::Values(model::MlpType::kGelu, model::MlpType::kSwiglu),
                                            ::testing::Bool(), ::testing::Bool()));

// Routed attention (CoLT5): both routers' thresholds in gaps of their scores so no step flips a
// decision; every parameter and the input against finite differences, the thresholds against
// their moving average. (positions, heads, kv_heads, biases, light_heads)
struct RoutedAttnCase {
  model::PosType pos;
  int heads, kv_heads;
  bool bias;
  int light_heads;
};
class RoutedAttentionFd : public ::testing::TestWithParam<RoutedAttnCase> {};

TEST_P(RoutedAttentionFd, BackwardMatchesFiniteDifferences) {
  const RoutedAttnCase pc = GetParam();
  model::ModelConfig c;
  c.model_dim = 16;
  c.ctx = 16;
  c.pos = pc.pos;
  c.bias = pc.bias;
  c.norm = pc.bias ? model::NormType::kLayerNorm : model::NormType::kRmsNorm;
  c.set_uniform_layers(1, model::LayerConfig{pc.heads, pc.kv_heads, 4, 32});
  const std::string args = "window=3,light_heads=" + std::to_string(pc.light_heads) + ",route_q=1/4,route_kv=1/2";
  c.layers[0].blocks = {{"routed_attention", args}, {"feed_forward", ""}};
  ASSERT_TRUE(c.validate().ok());
  const layers::Settings settings = c.settings();
  BlockUnderTest b("routed_attention", settings, c.layers[0], args);
  Rng rng(7);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  for (int64_t i = 0; i < c.model_dim; ++i) b.param("attn_norm.weight")[i] += 1.0f;
  const int64_t B = 2, T = 7, rows = B * T, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(1);
  Arena arena(1 << 20);
  // RoPE base 100, not 10000: at head_dim 4 the second pair would turn by 0.01 per position, so a
  // k bias there would shift a window's scores almost alike, and its gradient (a sum of terms
  // that nearly cancel) be fp32 rounding at the tolerance's floor.
  position::Rope rope(4, 100.0f, c.ctx);
  layers::LayerContext ctx{&settings, &pool, &arena, &rope};
  layers::Pass pass;
  pass.batch = B;
  pass.seq_len = T;
  // Each router's scores over the 14 rows, descending; its threshold in the widest gap among
  // the ranks [lo, hi).
  std::vector<float> h(rows * D), mean(rows), rstd(rows);
  layers::norm_forward(ctx, {b.param("attn_norm.weight"), b.param("attn_norm.bias")}, x.data(), rows, h.data(),
                       mean.data(), rstd.data());
  auto place = [&](const std::string& router, int lo, int hi, std::vector<double>* z) {
    const float* u = b.param(router + ".weight");
    double nu = 0;
    for (int64_t k = 0; k < D; ++k) nu += double(u[k]) * u[k];
    for (int64_t i = 0; i < rows; ++i) {
      double d = 0;
      for (int64_t k = 0; k < D; ++k) d += double(h[i * D + k]) * u[k];
      z->push_back(d / std::sqrt(nu));
    }
    std::sort(z->rbegin(), z->rend());
    int best = lo;
    for (int i = lo; i < hi; ++i)
      if ((*z)[i] - (*z)[i + 1] > (*z)[best] - (*z)[best + 1]) best = i;
    EXPECT_GT((*z)[best] - (*z)[best + 1], 0.06) << router << ": no clear gap in the scores";
    *b.param(router + ".threshold") = static_cast<float>(0.5 * ((*z)[best] + (*z)[best + 1]));
    return best + 1;
  };
  std::vector<double> zq, zkv;
  const int64_t routed_q = place("attn_router_q", 2, 6, &zq), routed_kv = place("attn_router_kv", 5, 10, &zkv);
  auto loss = [&] {
    arena.reset();
    b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
    const auto counts = b.block->take_route_counts();
    EXPECT_EQ(counts.at(0).routed, routed_q) << "a step changed the query routing";
    EXPECT_EQ(counts.at(1).routed, routed_kv) << "a step changed the key/value routing";
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  EXPECT_LE(arena.used(), b.block->forward_floats(pass));
  const auto counts = b.block->take_route_counts();
  ASSERT_EQ(counts.size(), 2u);
  EXPECT_EQ(counts[0].routed, routed_q);
  EXPECT_EQ(counts[1].routed, routed_kv);
  const int64_t before = (arena.used() + 15) & ~int64_t(15);
  std::vector<float> dx = r;
  b.block->backward(ctx, b.weights(), pass, dx.data());
  EXPECT_LE(arena.used() - before, b.block->backward_floats(pass));
  pass.save = false;
  // Thresholds: rate * (tau - the batch quantile), between the k-th and (k+1)-th largest of the
  // 14 scores, k = round(14 / 4) = 4 and round(14 / 2) = 7.
  float* tq = b.param("attn_router_q.threshold");
  float* tkv = b.param("attn_router_kv.threshold");
  EXPECT_NEAR(b.grads[tq - b.params.data()], layers::kThresholdRate * (*tq - 0.5 * (zq[3] + zq[4])), 1e-6);
  EXPECT_NEAR(b.grads[tkv - b.params.data()], layers::kThresholdRate * (*tkv - 0.5 * (zkv[6] + zkv[7])), 1e-6);
  check_fd("x", x, dx, loss, 1);
  std::vector<int64_t> skip = {tq - b.params.data(), tkv - b.params.data()};
  // Without RoPE a k bias shifts every score of a query row alike: its gradient is exactly zero,
  // and the finite difference is fp32 rounding of the shifted scores alone (up to ~7e-4 under
  // ASan's code generation), too close to the tolerance's floor. Checked as zero instead.
  for (size_t t = 0; t < b.offsets.size() && pc.pos != model::PosType::kRope; ++t) {
    const auto& decl = b.block->tensors()[t];
    if (decl.name != "attn_k.bias" && decl.name != "attn_light_k.bias") continue;
    for (int64_t i = 0; i < decl.shape[0]; ++i) {
      skip.push_back(b.offsets[t] + i);
      EXPECT_LT(std::fabs(b.grads[b.offsets[t] + i]), 1e-5) << decl.name << "[" << i << "]";
    }
  }
  check_fd("params", b.params, b.grads, loss, 1, skip);
}

INSTANTIATE_TEST_SUITE_P(Cases, RoutedAttentionFd,
                         ::testing::Values(RoutedAttnCase{model::PosType::kRope, 4, 4, false, 1},
                                           RoutedAttnCase{model::PosType::kRope, 4, 2, true, 2},
                                           RoutedAttnCase{model::PosType::kAlibi, 4, 4, true, 0},
                                           RoutedAttnCase{model::PosType::kAlibi, 4, 2, false, 2},
                                           RoutedAttnCase{model::PosType::kLearned, 4, 4, true, 2},
                                           RoutedAttnCase{model::PosType::kRope, 4, 1, false, 1}));

// The encoder form of routed attention (rule=topk): per sequence of 8, the top 2 queries and
// top 4 key/values routed, the heavy queries seeing every routed key/value, the light head
// block-local (blocks of 2). Refused in a decoder.
TEST(RoutedAttentionTopkFd, BackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.model_dim = 16;
  c.ctx = 16;
  c.encoder = true;
  c.pos = model::PosType::kRope;
  c.set_uniform_layers(1, model::LayerConfig{4, 2, 4, 32});
  const std::string args = "window=2,light_heads=2,route_q=1/4,route_kv=1/2,rule=topk";
  c.layers[0].pattern = attention::Full{};
  c.layers[0].blocks = {{"routed_attention", args}, {"feed_forward", ""}};
  ASSERT_TRUE(c.validate().ok()) << c.validate().message();
  const layers::Settings settings = c.settings();
  BlockUnderTest b("routed_attention", settings, c.layers[0], args);
  EXPECT_EQ(b.param("attn_router_q.threshold"), nullptr);
  Rng rng(23);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  for (int64_t i = 0; i < c.model_dim; ++i) b.param("attn_norm.weight")[i] += 1.0f;
  const int64_t B = 2, T = 8, rows = B * T, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(1);
  Arena arena(1 << 20);
  position::Rope rope(4, 10000.0f, c.ctx);
  layers::LayerContext ctx{&settings, &pool, &arena, &rope};
  layers::Pass pass;
  pass.batch = B;
  pass.seq_len = T;
  auto loss = [&] {
    arena.reset();
    b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
    const auto counts = b.block->take_route_counts();
    EXPECT_EQ(counts.at(0).routed, 2 * B);
    EXPECT_EQ(counts.at(1).routed, 4 * B);
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  EXPECT_LE(arena.used(), b.block->forward_floats(pass));
  b.block->take_route_counts();
  std::vector<float> dx = r;
  b.block->backward(ctx, b.weights(), pass, dx.data());
  pass.save = false;
  // Which rows are the top k must not change under a step: at this seed every sequence's k-th
  // and (k+1)-th scores are apart (a swap would also fail the analytic comparison).
  check_fd("x", x, dx, loss, 1);
  check_fd("params", b.params, b.grads, loss, 1);

  model::ModelConfig dec = c;
  dec.encoder = false;
  dec.layers[0].pattern = attention::Causal{};
  EXPECT_FALSE(dec.validate().ok());
}

// The encoder form (rule=topk): the top 2 of each sequence of 6 routed, the gate against the
// midpoint of the 2nd and 3rd scores. Refused in a decoder.
TEST(RoutedFeedForwardTopkFd, BackwardMatchesFiniteDifferences) {
  model::ModelConfig c;
  c.model_dim = 12;
  c.encoder = true;
  c.set_uniform_layers(1, model::LayerConfig{2, 2, 6, 20});
  const std::string args = "light=6,heavy=20,route=1/3,rule=topk";
  c.layers[0].pattern = attention::Full{};
  c.layers[0].blocks = {{"attention", ""}, {"routed_feed_forward", args}};
  ASSERT_TRUE(c.validate().ok()) << c.validate().message();
  const layers::Settings settings = c.settings();
  BlockUnderTest b("routed_feed_forward", settings, c.layers[0], args);
  EXPECT_EQ(b.param("ffn_router.threshold"), nullptr);
  Rng rng(21);
  b.fill_from_model(c, randv(model::ParamLayout(c).total(), rng, 0.5));
  const int64_t B = 2, T = 6, rows = B * T, D = c.model_dim;
  std::vector<float> x = randv(rows * D, rng, 1.0), r = randv(rows * D, rng, 1.0), y(rows * D);
  ThreadPool pool(1);
  Arena arena(1 << 18);
  layers::LayerContext ctx{&settings, &pool, &arena, nullptr};
  layers::Pass pass;
  pass.batch = B;
  pass.seq_len = T;
  auto loss = [&] {
    arena.reset();
    b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
    EXPECT_EQ(b.block->take_route_counts().at(0).routed, 2 * B);
    double L = 0;
    for (int64_t i = 0; i < rows * D; ++i) L += double(r[i]) * y[i];
    return L;
  };
  arena.reset();
  pass.save = true;
  b.block->forward(ctx, b.weights(), pass, x.data(), y.data());
  b.block->take_route_counts();
  std::vector<float> dx = r;
  b.block->backward(ctx, b.weights(), pass, dx.data());
  pass.save = false;
  // A finite-difference step must not swap which rows are the top 2: every sequence's 2nd and
  // 3rd scores are well apart at this seed (a swap would also fail the analytic comparison).
  check_fd("x", x, dx, loss, 1);
  check_fd("params", b.params, b.grads, loss, 1);

  model::ModelConfig dec = c;
  dec.encoder = false;
  dec.layers[0].pattern = attention::Causal{};
  EXPECT_FALSE(dec.validate().ok());
}

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
  const int64_t token = layout.find("token_embd.weight")->offset, position = layout.find("position_embd.weight")->offset;
  const int64_t B = 2, T = 5, D = c.model_dim;
  std::vector<int32_t> tokens = {1, 3, 3, 0, 8, 2, 1, 1, 7, 3};  // repeats exercise accumulation
  std::vector<float> r = randv(B * T * D, rng, 1.0), x(B * T * D);
  ThreadPool pool(1);
  Arena arena;
  const layers::Settings settings = c.settings();
  layers::LayerContext ctx{&settings, &pool, &arena, nullptr};
  auto loss = [&] {
    layers::embedding_forward(ctx, {params.data() + token, params.data() + position}, nullptr, tokens.data(), B, T,
                              0, x.data());
    double L = 0;
    for (size_t i = 0; i < x.size(); ++i) L += double(r[i]) * x[i];
    return L;
  };
  layers::embedding_backward(ctx, {grads.data() + token, grads.data() + position}, tokens.data(), B, T, 0,
                             r.data());
  check_fd("embeddings", params, grads, loss, 1);
}

}  // namespace
}  // namespace longctx
