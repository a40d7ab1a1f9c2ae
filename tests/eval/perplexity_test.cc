// eval::evaluate_length against independent computations: per-window losses from the model's
// own loss function, and a brute-force sliding evaluation with a log-softmax written here.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "eval/perplexity.h"
#include "model/checkpoint.h"

namespace longctx {
namespace {

model::ModelConfig small_config(model::PosType pos, int ctx) {
  model::ModelConfig c;
  c.vocab_size = 300;
  c.model_dim = 32;
  c.ctx = ctx;
  c.pos = pos;
  c.set_uniform_layers(2, model::LayerConfig{4, 2, 8, 64});
  return c;
}

train::TokenStream random_stream(int64_t n, int vocab, uint64_t seed) {
  Rng rng(seed);
  train::TokenStream s;
  for (int64_t i = 0; i < n; ++i) {
    s.tokens.push_back(static_cast<int32_t>(rng.below(vocab)));
    s.token_bytes.push_back(static_cast<uint16_t>(1 + rng.below(4)));
  }
  return s;
}

TEST(Perplexity, NonOverlappingEqualsMeanOfIndependentWindowLosses) {
  ThreadPool pool(2);
  model::Model m(small_config(model::PosType::kRope, 64));
  Rng rng(3);
  m.init(rng);
  const auto stream = random_stream(1000, 300, 7);
  for (int64_t L : {int64_t(16), int64_t(64), int64_t(37)}) {
    auto r = eval::evaluate_length(m, pool, stream, L, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    // Each window on its own, through the model's training loss (sum over its L targets).
    const int64_t windows = (1000 - 1) / L;
    EXPECT_EQ(r->windows, windows);
    double sum_of_means = 0;
    int64_t bytes = 0;
    Arena arena;
    for (int64_t w = 0; w < windows; ++w) {
      std::vector<int32_t> in(stream.tokens.begin() + w * L, stream.tokens.begin() + w * L + L);
      std::vector<int32_t> tg(stream.tokens.begin() + w * L + 1, stream.tokens.begin() + w * L + L + 1);
      sum_of_means += m.forward_loss(pool, arena, in.data(), tg.data(), 1, L) / L;
      for (int64_t t = 1; t <= L; ++t) bytes += stream.token_bytes[w * L + t];
    }
    const double mean = sum_of_means / windows;
    EXPECT_NEAR(r->loss, mean, 1e-6 * mean) << L;
    EXPECT_NEAR(r->ppl, std::exp(mean), 1e-5 * std::exp(mean)) << L;
    EXPECT_EQ(r->scored_tokens, windows * L);
    EXPECT_EQ(r->scored_bytes, bytes);
    EXPECT_NEAR(r->bpb, mean * windows * L / std::log(2.0) / bytes, 1e-6);
  }
}

// Sliding windows: every window's last S targets scored (all of the first window's), checked by
// a log-softmax over logits computed window by window.
TEST(Perplexity, StrideEqualsBruteForceSlidingComputation) {
  ThreadPool pool(2);
  model::Model m(small_config(model::PosType::kAlibi, 48));
  Rng rng(4);
  m.init(rng);
  const auto stream = random_stream(400, 300, 9);
  for (auto [L, S] : {std::pair<int64_t, int64_t>{48, 16}, {32, 5}, {20, 20}}) {
    auto r = eval::evaluate_length(m, pool, stream, L, {S, 0});
    ASSERT_TRUE(r.ok()) << r.status().message();
    double nats = 0;
    int64_t scored = 0;
    Arena arena;
    std::vector<float> logits(L * 300);
    int64_t windows = 0;
    for (int64_t start = 0; start + L + 1 <= 400; start += S, ++windows) {
      arena.reset();
      m.forward_logits(pool, arena, stream.tokens.data() + start, 1, L, logits.data());
      for (int64_t t = (start == 0 ? 0 : L - S); t < L; ++t) {
        const float* row = logits.data() + t * 300;
        double mx = row[0], z = 0;
        for (int v = 1; v < 300; ++v) mx = std::max(mx, double(row[v]));
        for (int v = 0; v < 300; ++v) z += std::exp(double(row[v]) - mx);
        nats += std::log(z) + mx - row[stream.tokens[start + t + 1]];
        ++scored;
      }
    }
    EXPECT_EQ(r->windows, windows) << L << "/" << S;
    EXPECT_EQ(r->scored_tokens, scored);
    EXPECT_NEAR(r->loss, nats / scored, 1e-5 * nats / scored) << L << "/" << S;
  }
}

// Windows run through the KV cache in passes of --ubatch tokens score what whole windows do.
TEST(Perplexity, CachedPassesEqualWholeWindows) {
  ThreadPool pool(2);
  model::Model m(small_config(model::PosType::kRope, 48));
  Rng rng(6);
  m.init(rng);
  const auto stream = random_stream(400, 300, 10);
  for (auto [L, S] : {std::pair<int64_t, int64_t>{48, 0}, {32, 5}}) {
    auto whole = eval::evaluate_length(m, pool, stream, L, {S, 0});
    eval::EvalOptions o;
    o.stride = S;
    o.ubatch = 7;
    auto cached = eval::evaluate_length(m, pool, stream, L, o);
    ASSERT_TRUE(whole.ok() && cached.ok());
    EXPECT_EQ(cached->scored_tokens, whole->scored_tokens);
    EXPECT_NEAR(cached->loss, whole->loss, 1e-5 * whole->loss) << L << "/" << S;
    o.k_type = 1;  // fp16 keys: close, not equal
    auto half = eval::evaluate_length(m, pool, stream, L, o);
    ASSERT_TRUE(half.ok());
    EXPECT_NEAR(half->loss, whole->loss, 1e-3 * whole->loss);
  }
}

// A checkpoint built for 128 positions evaluates at 2048 with ALiBi and with RoPE; learned
// positions refuse lengths past their table.
TEST(Perplexity, ShortCheckpointEvaluatesLong) {
  ThreadPool pool(2);
  tokenizer::TrainOptions topt;
  topt.vocab_size = 300;
  std::string text;
  for (int i = 0; i < 60; ++i) text += "in the beginning was the word " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok());
  for (auto pos : {model::PosType::kAlibi, model::PosType::kRope, model::PosType::kLearned}) {
    SCOPED_TRACE(model::pos_name(pos));
    model::ModelConfig cfg = small_config(pos, 128);
    cfg.vocab_size = tok->vocab_size();
    model::Model m(cfg);
    Rng rng(5);
    m.init(rng);
    const std::string path = ::testing::TempDir() + "/eval_short_" + model::pos_name(pos) + ".gguf";
    ASSERT_TRUE(model::save_checkpoint(path, m, *tok).ok());
    auto loaded = model::load_checkpoint(path);
    ASSERT_TRUE(loaded.ok());
    model::ModelConfig longer = loaded->model->config();
    longer.ctx = 2048;
    auto big = loaded->model->with_config(longer);
    if (pos == model::PosType::kLearned) {
      ASSERT_FALSE(big.ok());
      EXPECT_NE(big.status().message().find("128"), std::string::npos) << big.status().message();
      EXPECT_NE(big.status().message().find("2048"), std::string::npos) << big.status().message();
      continue;
    }
    ASSERT_TRUE(big.ok()) << big.status().message();
    const auto stream = random_stream(2 * 2048 + 1, cfg.vocab_size, 11);
    auto r = eval::evaluate_length(**big, pool, stream, 2048, {});
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r->windows, 2);
    EXPECT_TRUE(std::isfinite(r->loss) && r->loss > 0);
    // The short lengths agree with the unmodified model.
    auto a = eval::evaluate_length(*loaded->model, pool, stream, 128, {});
    auto b = eval::evaluate_length(**big, pool, stream, 128, {});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_NEAR(a->loss, b->loss, 1e-6 * a->loss);
    // Past the model's context is an error, not a crash.
    EXPECT_FALSE(eval::evaluate_length(*loaded->model, pool, stream, 129, {}).ok());
  }
}

TEST(Perplexity, RejectsBadArguments) {
  ThreadPool pool(1);
  model::Model m(small_config(model::PosType::kNone, 32));
  const auto stream = random_stream(20, 300, 1);
  EXPECT_FALSE(eval::evaluate_length(m, pool, stream, 0, {}).ok());
  EXPECT_FALSE(eval::evaluate_length(m, pool, stream, 16, {17, 0}).ok());   // stride past length
  EXPECT_FALSE(eval::evaluate_length(m, pool, stream, 32, {}).ok());        // text too short
}

}  // namespace
}  // namespace longctx
