// A block kind defined only in this file, a learned per-channel scale (y = x * s, s [model_dim]),
// registered at run time, composes into a model with the built-in kinds: the model's gradients
// (its own included) match finite differences of the loss, it trains through train::Trainer,
// saves with its block list, loads, and decodes through the KV cache to the full forward's logits.
// Nothing outside this file knows the kind.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/vec.h"
#include "layers/block.h"
#include "model/checkpoint.h"
#include "train/trainer.h"

namespace longctx {
namespace {

class ChannelScale final : public layers::Block {
 public:
  explicit ChannelScale(const layers::BlockEnv& env) : D_(env.settings.model_dim) {
    scale_ = declare({"scale.weight", {D_}, kF32, true, false, layers::Init::kOnes});
  }
  int64_t forward_floats(const layers::Pass&) const override { return 0; }
  int64_t backward_floats(const layers::Pass&) const override { return 0; }
  void forward(const layers::LayerContext&, const layers::Weights& w, const layers::Pass& pass, const float* x_in,
               float* x_out) override {
    const float* s = param(w, scale_);
    for (int64_t r = 0; r < pass.rows(); ++r)
      for (int64_t j = 0; j < D_; ++j) x_out[r * D_ + j] = x_in[r * D_ + j] * s[j];
    if (pass.save) x_in_ = x_in;
  }
  void backward(const layers::LayerContext&, const layers::Weights& w, const layers::Pass& pass, float* dx) override {
    const float* s = param(w, scale_);
    float* g = grad(w, scale_);
    for (int64_t r = 0; r < pass.rows(); ++r)
      for (int64_t j = 0; j < D_; ++j) {
        g[j] += dx[r * D_ + j] * x_in_[r * D_ + j];
        dx[r * D_ + j] *= s[j];
      }
  }

 private:
  int64_t D_;
  int scale_ = -1;
  const float* x_in_ = nullptr;  // Saved: the input rows, for ds
};

const bool kRegistered = [] {
  Status st = layers::register_block_kind("channel_scale", [](const layers::BlockEnv& env)
                                              -> Expected<std::unique_ptr<layers::Block>> {
    if (!env.args.empty()) return Status::Error("channel_scale takes no arguments");
    return std::unique_ptr<layers::Block>(std::make_unique<ChannelScale>(env));
  });
  return st.ok();
}();

std::string corpus() {
  std::string t;
  for (int i = 0; i < 4000; ++i)  // 420 KB: the held-out part (every 20th 16 KiB block) needs some
    t += "And God said, Let there be light: and there was light. And God saw the light, that it was good " +
         std::to_string(i % 7) + ".\n";
  return t;
}

model::ModelConfig config(int vocab) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = 16;
  c.ctx = 32;
  c.pos = model::PosType::kRope;
  layers::LayerConfig l{4, 2, 4, 32};
  l.blocks = {{"attention", ""}, {"channel_scale", ""}, {"feed_forward", ""}};
  c.set_uniform_layers(2, l);
  c.layers[1].pattern = attention::SlidingWindow{8};
  return c;
}

TEST(CustomBlock, RegisteredAndRefusedWhereUnknownOrDuplicated) {
  ASSERT_TRUE(kRegistered);
  EXPECT_FALSE(layers::register_block_kind("channel_scale", nullptr).ok());
  model::ModelConfig c = config(300);
  EXPECT_TRUE(c.validate().ok()) << c.validate().message();
  c.layers[0].blocks.push_back({"no_such_block", ""});
  EXPECT_NE(c.validate().message().find("unknown block kind 'no_such_block'"), std::string::npos);
  c.layers[0].blocks.back() = {"channel_scale", ""};  // a second one declares scale.weight again
  EXPECT_NE(c.validate().message().find("two blocks declare tensor 'scale.weight'"), std::string::npos);
  c.layers[0].blocks.back() = {"channel_scale", "x=1"};
  EXPECT_NE(c.validate().message().find("channel_scale takes no arguments"), std::string::npos);
}

TEST(CustomBlock, GradientsMatchFiniteDifferences) {
  model::ModelConfig c = config(40);
  model::Model m(c);
  Rng rng(3);
  m.init(rng);
  // Scales and norms away from 1 so that every term of the gradient matters.
  for (const auto& t : m.layout().tensors())
    for (int64_t i = 0; i < t.numel; ++i)
      m.params()[t.offset + i] += t.shape.size() == 1 ? 0.3f * float(rng.normal()) : 0.0f;
  ThreadPool pool(2);
  Arena arena;
  const int64_t B = 2, T = 12;
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (int64_t i = 0; i < B * T; ++i) tokens[i] = static_cast<int32_t>(rng.below(40)), targets[i] = (i * 7) % 40;
  m.zero_grads();
  m.forward_backward(pool, arena, tokens.data(), targets.data(), B, T, 1.0f);
  std::vector<float> g(m.grads(), m.grads() + m.layout().total());
  auto loss = [&] { return m.forward_loss(pool, arena, tokens.data(), targets.data(), B, T); };
  int checked = 0;
  for (const auto& t : m.layout().tensors()) {
    const bool scale = t.name.find("scale.weight") != std::string::npos;
    const int64_t stride = scale ? 1 : 97;  // every scale entry, a sample of the rest
    for (int64_t i = 0; i < t.numel; i += stride) {
      float* p = m.params() + t.offset + i;
      const float keep = *p, h = 1e-2f;
      *p = keep + h;
      const double lp = loss();
      *p = keep - h;
      const double lm = loss();
      *p = keep;
      const double fd = (lp - lm) / (2.0 * h), an = g[t.offset + i];
      EXPECT_LT(std::fabs(fd - an) / (3e-2 + std::fabs(fd)), 3e-2) << t.name << "[" << i << "]: " << an << " vs " << fd;
      ++checked;
    }
  }
  EXPECT_GE(checked, 100);
}

TEST(CustomBlock, TrainsSavesLoadsAndDecodes) {
  const std::string text = corpus();
  tokenizer::TrainOptions topt;
  topt.vocab_size = 300;
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok());
  ThreadPool pool(2);
  train::TrainOptions opt;
  opt.steps = 8;
  opt.batch = 4;
  opt.ctx = 32;
  opt.warmup = 2;
  opt.lr = 1e-2f;
  opt.eval_batches = 2;
  train::Trainer trainer(std::make_unique<model::Model>(config(tok->vocab_size())), *tok, opt, pool);
  trainer.init_weights();
  ASSERT_TRUE(trainer.set_corpus(text).ok());
  const model::ParamTensor* scale = trainer.model().layout().find("blk.1.scale.weight");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(trainer.model().params()[scale->offset], 1.0f);  // its declared init
  const double first = trainer.step().loss;
  double last = first;
  for (int s = 1; s < opt.steps; ++s) last = trainer.step().loss;
  EXPECT_LT(last, first);
  EXPECT_NE(trainer.model().params()[scale->offset], 1.0f);  // the optimizer moved it

  const std::string path = testing::TempDir() + "/custom_block.gguf";
  ASSERT_TRUE(trainer.save(path).ok());
  auto loaded = model::load_checkpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model::Model& m = *loaded->model;
  EXPECT_EQ(layers::format_blocks(m.config().layers[0].blocks), "attention+channel_scale+feed_forward");
  ASSERT_EQ(m.layout().total(), trainer.model().layout().total());
  EXPECT_EQ(0, std::memcmp(m.params(), trainer.model().params(), m.layout().total() * sizeof(float)));

  const std::vector<int32_t> ids = loaded->tokenizer.encode("And God saw the light, that it was good. And God said");
  const int64_t n = static_cast<int64_t>(ids.size()), V = m.config().vocab_size;
  ASSERT_GT(n, 10);
  Arena arena;
  std::vector<float> full(n * V), step(n * V);
  m.forward_logits(pool, arena, ids.data(), 1, n, full.data());
  auto cache = m.make_cache(n, {0, 0, 1, 1, 4});  // pages of 4: the window layer gives pages back
  ASSERT_TRUE(cache.ok());
  for (int64_t t = 0; t < n; ++t)
    ASSERT_TRUE(m.forward_cached(pool, arena, *cache, &ids[t], 1, t, step.data() + t * V, false).ok());
  double worst = 0, range = 0;
  for (int64_t i = 0; i < n * V; ++i) {
    worst = std::max(worst, std::fabs(double(full[i]) - step[i]));
    range = std::max(range, std::fabs(double(full[i])));
  }
  EXPECT_LT(worst, 1e-5 * range);
  EXPECT_EQ(cache->n_slots(), 2);  // the scale keeps nothing in the cache
  std::filesystem::remove(path);
  std::filesystem::remove(train::state_path(path));
}

}  // namespace
}  // namespace longctx
