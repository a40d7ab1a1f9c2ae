// LoRA (model/lora.h): with B = 0 the model computes exactly what its base does; the gradients
// of A and B against central finite differences of the loss (and none for the frozen base); an
// adapter written and applied to the base gives the trained model's logits, and merged into the
// weights the same logits again (fp32, within 1e-5); adapters for another base, files that are
// not adapters and targets longctx does not adapt are refused. (llama.cpp loading our adapters:
// tests/llamacpp/compare_logits.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "io/gguf.h"
#include "model/lora.h"

namespace longctx {
namespace {

model::ModelConfig config(int dim = 32) {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = dim;
  c.ctx = 16;
  c.set_uniform_layers(2, model::LayerConfig{4, 2, 8, 48});
  return c;
}

layers::LoraSettings lora_all(int rank = 4, float alpha = 8) {
  auto l = layers::parse_lora("r=" + std::to_string(rank) + ",alpha=" + std::to_string(alpha) +
                              ",targets=q,k,v,o,gate,up,down");
  EXPECT_TRUE(l.ok()) << l.status().message();
  return *l;
}

std::unique_ptr<model::Model> base_model(int dim = 32) {
  auto m = std::make_unique<model::Model>(config(dim));
  Rng rng(3);
  m->init(rng);
  return m;
}

std::vector<int32_t> tokens(int n, int salt = 0) {
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back((i * 17 + 5 + salt) % 61);
  return t;
}

std::vector<float> logits(model::Model& m, const std::vector<int32_t>& t) {
  ThreadPool pool(2);
  Arena arena;
  std::vector<float> out(t.size() * m.config().vocab_size);
  m.forward_logits(pool, arena, t.data(), 1, static_cast<int64_t>(t.size()), out.data());
  return out;
}

// Every LoRA B drawn N(0, 0.1^2): an adapter that does something.
void randomize_b(model::Model& m, uint64_t seed) {
  Rng rng(seed);
  for (const auto& t : m.layout().tensors())
    if (t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".lora_b") == 0)
      for (int64_t i = 0; i < t.numel; ++i) m.params()[t.offset + i] = static_cast<float>(rng.normal() * 0.1);
}

// Central differences of `loss` over every `stride`-th element of m's trainable tensors against
// the analytic gradients g (the layout's flat gradient buffer); returns how many were checked.
int check_fd(model::Model& m, const std::vector<float>& g, const std::function<double()>& loss, int stride, float h) {
  int checked = 0;
  for (const auto& t : m.layout().tensors()) {
    if (!t.trainable) continue;
    float* p = m.params() + t.offset;
    for (int64_t i = 0; i < t.numel; i += stride) {
      const float keep = p[i];
      p[i] = keep + h;
      const double lp = loss();
      p[i] = keep - h;
      const double lm = loss();
      p[i] = keep;
      const double fd = (lp - lm) / (2.0 * h), an = g[t.offset + i];
      EXPECT_LT(std::fabs(fd - an) / (3e-2 + std::fabs(fd)), 2e-2)
          << t.name << "[" << i << "]: analytic " << an << " vs finite difference " << fd;
      ++checked;
    }
  }
  return checked;
}

TEST(Lora, ParsesItsSpecAndRefusesNonsense) {
  auto l = layers::parse_lora("r=16,alpha=32,targets=q,k,v,o,up,down,gate");
  ASSERT_TRUE(l.ok());
  EXPECT_EQ(l->rank, 16);
  EXPECT_FLOAT_EQ(l->scale(), 2.0f);
  EXPECT_EQ(l->targets.size(), 7u);
  for (const char* bad : {"alpha=32,targets=q", "r=0,targets=q", "r=8", "r=8,targets=qq", "r=8,targets=q,beta=1",
                          "r=x,targets=q", "r=8,alpha=-1,targets=q"})
    EXPECT_FALSE(layers::parse_lora(bad).ok()) << bad;
}

TEST(Lora, ZeroBComputesTheBase) {
  auto base = base_model();
  Rng rng(9);
  auto m = base->with_lora(lora_all(), rng);
  ASSERT_TRUE(m.ok()) << m.status().message();
  // Only the 7 x 2 pairs train.
  int lora = 0;
  for (const auto& t : (*m)->layout().tensors()) {
    const bool is_lora = t.name.find(".lora_") != std::string::npos;
    EXPECT_EQ(t.trainable, is_lora) << t.name;
    lora += is_lora;
  }
  EXPECT_EQ(lora, 2 * 7 * 2);
  const auto t = tokens(12);
  EXPECT_EQ(logits(**m, t), logits(*base, t));
}

TEST(Lora, GradientsMatchFiniteDifferences) {
  auto base = base_model();
  Rng rng(9);
  auto made = base->with_lora(lora_all(3, 6), rng);
  ASSERT_TRUE(made.ok());
  model::Model& m = **made;
  randomize_b(m, 4);
  const auto in = tokens(10), tg = tokens(10, 3);
  ThreadPool pool(2);
  Arena arena;
  m.zero_grads();
  m.forward_backward(pool, arena, in.data(), tg.data(), 1, 10, 1.0f);
  auto loss = [&] { return m.forward_loss(pool, arena, in.data(), tg.data(), 1, 10); };
  // The frozen base gets no gradient.
  for (const auto& t : m.layout().tensors())
    if (!t.trainable)
      for (int64_t i = 0; i < t.numel; ++i) ASSERT_EQ(m.grads()[t.offset + i], 0.0f) << t.name;
  const std::vector<float> g(m.grads(), m.grads() + m.layout().total());
  const int checked = check_fd(m, g, loss, 37, 1e-2f);
  EXPECT_GT(checked, 60);
}

// With dropout on the branches' input, a pass of a fixed seed is a function of the weights: its
// gradients still match finite differences of its loss, and the mask changes the loss.
TEST(Lora, DropoutGradientsMatchFiniteDifferencesOfTheSameMask) {
  auto base = base_model();
  Rng rng(9);
  layers::LoraSettings l = lora_all(3, 6);
  l.dropout = 0.3f;
  auto made = base->with_lora(l, rng);
  ASSERT_TRUE(made.ok());
  model::Model& m = **made;
  randomize_b(m, 4);
  const auto in = tokens(10), tg = tokens(10, 3);
  ThreadPool pool(2);
  Arena arena;
  auto loss = [&] { return m.forward_backward(pool, arena, in.data(), tg.data(), 1, 10, 1.0f); };
  m.set_dropout_seed(0);
  const double plain = loss();
  m.set_dropout_seed(777);
  m.zero_grads();
  const double with_mask = loss();
  EXPECT_NE(with_mask, plain);
  const std::vector<float> g(m.grads(), m.grads() + m.layout().total());
  // The masked model curves more: a smaller step.
  const int checked = check_fd(m, g, loss, 53, 5e-3f);
  EXPECT_GT(checked, 40);
}

TEST(Lora, AdapterFileAppliedAndMergedGiveTheTrainedLogits) {
  auto base = base_model();
  Rng rng(9);
  auto made = base->with_lora(lora_all(4, 8), rng);
  ASSERT_TRUE(made.ok());
  randomize_b(**made, 5);
  const auto t = tokens(14);
  const std::vector<float> want = logits(**made, t), plain = logits(*base, t);
  const std::string path = ::testing::TempDir() + "/adapter.gguf";
  ASSERT_TRUE(model::save_lora_adapter(path, **made, "longctx").ok());

  ASSERT_TRUE(model::apply_adapter_file(*base, path, 1.0f).ok());
  EXPECT_EQ(base->adapter_count(), 1);
  const std::vector<float> applied = logits(*base, t);
  float worst = 0, moved = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(applied[i] - want[i]));
    moved = std::max(moved, std::fabs(want[i] - plain[i]));
  }
  EXPECT_LE(worst, 1e-5f);
  EXPECT_GT(moved, 1e-2f);  // the adapter does something

  ASSERT_TRUE(base->merge_adapters().ok());
  EXPECT_EQ(base->adapter_count(), 0);
  const std::vector<float> merged = logits(*base, t);
  worst = 0;
  for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, std::fabs(merged[i] - want[i]));
  EXPECT_LE(worst, 1e-5f);
  std::filesystem::remove(path);
}

TEST(Lora, RefusesAdaptersForAnotherBaseAndFilesThatAreNotAdapters) {
  auto other = base_model(48);
  Rng rng(9);
  auto made = other->with_lora(lora_all(), rng);
  ASSERT_TRUE(made.ok());
  const std::string path = ::testing::TempDir() + "/other_adapter.gguf";
  ASSERT_TRUE(model::save_lora_adapter(path, **made, "longctx").ok());
  auto base = base_model();
  const Status s = model::apply_adapter_file(*base, path, 1.0f);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("another base"), std::string::npos) << s.message();
  EXPECT_EQ(base->adapter_count(), 0);

  io::GgufWriter w;  // a tokenizer-only file
  w.set_string("general.type", "tokenizer");
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_NE(model::apply_adapter_file(*base, path, 1.0f).message().find("not a LoRA adapter"), std::string::npos);

  io::GgufWriter o;  // an adapter of the output matrix
  o.set_string("general.type", "adapter");
  o.set_string("adapter.type", "lora");
  std::vector<float> a(4 * 32), b(61 * 4);
  ASSERT_TRUE(o.add_tensor("output.weight.lora_a", {32, 4}, kF32, a.data(), a.size() * 4).ok());
  ASSERT_TRUE(o.add_tensor("output.weight.lora_b", {4, 61}, kF32, b.data(), b.size() * 4).ok());
  ASSERT_TRUE(o.write(path).ok());
  const Status t = model::apply_adapter_file(*base, path, 1.0f);
  EXPECT_FALSE(t.ok());  // tied output: no output.weight here; either way, refused
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace longctx
