// Block expansion (model/expand.h): the expanded model computes the same logits as the original
// (f32, within 1e-6; layer norms with biases, GQA, learned and ALiBi positions, RoPE), the
// added layers are the copies the rule asks for, are marked in the config and survive a
// checkpoint round trip; bad counts are refused. (SmolLM2 expanded as a GGUF is compared with
// llama.cpp in tests/llamacpp/compare_logits.py.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "model/checkpoint.h"
#include "model/expand.h"
#include "model/weights.h"
#include "tokenizer/bpe.h"

namespace longctx {
namespace {

model::ModelConfig config(const std::string& kind, int vocab = 97) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = 32;
  c.ctx = 48;
  c.set_uniform_layers(4, model::LayerConfig{4, 2, 8, 48});
  if (kind == "layernorm-bias-learned") {
    c.norm = model::NormType::kLayerNorm;
    c.bias = true;
    c.pos = model::PosType::kLearned;
    c.mlp = model::MlpType::kGelu;
    c.tied_embeddings = false;
  } else if (kind == "alibi-mqa") {
    c.pos = model::PosType::kAlibi;
    for (auto& l : c.layers) l.kv_heads = 1;
  }
  return c;
}

std::vector<float> logits(model::Model& m, const std::vector<int32_t>& tokens) {
  ThreadPool pool(2);
  Arena arena;
  std::vector<float> out(tokens.size() * m.config().vocab_size);
  m.forward_logits(pool, arena, tokens.data(), 1, static_cast<int64_t>(tokens.size()), out.data());
  return out;
}

TEST(Expand, LayersOfTheRule) {
  auto a = model::expansion_layers(6, 0, 3);
  ASSERT_TRUE(a.ok());
  const std::vector<std::pair<int, bool>> want = {{0, false}, {1, false}, {2, false}, {2, true},
                                                  {3, false}, {4, false}, {5, false}, {5, true}};
  ASSERT_EQ(a->size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ((*a)[i].source, want[i].first) << i;
    EXPECT_EQ((*a)[i].added, want[i].second) << i;
  }
  auto b = model::expansion_layers(6, 2, 0);  // --add 2 == --every 3
  ASSERT_TRUE(b.ok());
  ASSERT_EQ(b->size(), a->size());
  for (size_t i = 0; i < a->size(); ++i) EXPECT_EQ((*a)[i].source, (*b)[i].source);
  for (auto [add, every] : {std::pair{4, 0}, {0, 4}, {0, 0}, {1, 2}, {-1, 0}, {0, -3}})
    EXPECT_FALSE(model::expansion_layers(6, add, every).ok()) << add << " " << every;
}

class ExpandSameFunction : public ::testing::TestWithParam<std::string> {};

TEST_P(ExpandSameFunction, LogitsEqualBeforeAndAfter) {
  model::Model m(config(GetParam()));
  Rng rng(5);
  m.init(rng);
  // Nonzero biases and norm weights everywhere, so a copy that kept them would show.
  for (const auto& t : m.layout().tensors())
    if (t.shape.size() == 1)
      for (int64_t i = 0; i < t.numel; ++i) m.params()[t.offset + i] += 0.1f * std::sin(0.7f * i + t.offset);
  std::vector<int32_t> tokens;
  for (int i = 0; i < 40; ++i) tokens.push_back((i * 37 + 11) % 97);
  const std::vector<float> before = logits(m, tokens);
  for (int every : {1, 2, 4}) {
    auto order = model::expansion_layers(4, 0, every);
    ASSERT_TRUE(order.ok());
    auto e = model::expand_model(m, *order);
    ASSERT_TRUE(e.ok()) << e.status().message();
    EXPECT_EQ((*e)->config().n_layers(), 4 + 4 / every);
    const std::vector<float> after = logits(**e, tokens);
    ASSERT_EQ(after.size(), before.size());
    float worst = 0;
    for (size_t i = 0; i < before.size(); ++i) worst = std::max(worst, std::fabs(after[i] - before[i]));
    EXPECT_LE(worst, 1e-6f) << GetParam() << ", --every " << every;

    // The added layers are copies of their sources but for the zeroed branch outputs, which
    // are the attention output and feed-forward down projections (and their biases).
    const auto& ecfg = (*e)->config();
    ASSERT_EQ(ecfg.added_layers.size(), static_cast<size_t>(4 / every));
    int zeroed = 0;
    for (const auto& t : (*e)->layout().tensors()) {
      int layer = -1;
      std::string rest;
      if (!model::split_block_name(t.name, &layer, &rest)) continue;
      const auto& src = (*order)[layer];
      EXPECT_EQ(src.added, std::binary_search(ecfg.added_layers.begin(), ecfg.added_layers.end(), layer));
      const model::ParamTensor* s = m.layout().find("blk." + std::to_string(src.source) + "." + rest);
      ASSERT_NE(s, nullptr) << t.name;
      const float* p = (*e)->params() + t.offset;
      const bool zero = src.added && (rest.rfind("attn_output.", 0) == 0 || rest.rfind("ffn_down.", 0) == 0);
      if (zero) {
        ++zeroed;
        for (int64_t i = 0; i < t.numel; ++i) ASSERT_EQ(p[i], 0.0f) << t.name;
      } else {
        EXPECT_EQ(std::memcmp(p, m.params() + s->offset, t.numel * sizeof(float)), 0) << t.name;
      }
    }
    EXPECT_EQ(zeroed, static_cast<int>(ecfg.added_layers.size()) * (m.config().bias ? 4 : 2));
  }
}

INSTANTIATE_TEST_SUITE_P(Configs, ExpandSameFunction,
                         ::testing::Values("rmsnorm-rope-gqa", "layernorm-bias-learned", "alibi-mqa"));

TEST(Expand, AddedLayersSurviveACheckpointAndASecondExpansion) {
  tokenizer::TrainOptions to;
  to.vocab_size = 300;
  std::string text;
  for (int i = 0; i < 400; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, to);
  ASSERT_TRUE(tok.ok());
  model::Model m(config("rmsnorm-rope-gqa", tok->vocab_size()));
  Rng rng(3);
  m.init(rng);
  auto e1 = model::expand_model(m, *model::expansion_layers(4, 2, 0));
  ASSERT_TRUE(e1.ok());
  EXPECT_EQ((*e1)->config().added_layers, (std::vector<int>{2, 5}));
  const std::string path = ::testing::TempDir() + "/expanded.gguf";
  ASSERT_TRUE(model::save_checkpoint(path, **e1, *tok).ok());
  auto back = model::load_checkpoint(path);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->model->config().added_layers, (std::vector<int>{2, 5}));
  // Expanding again: layers added before stay marked at their new numbers, and so do the copies
  // of them.
  auto e2 = model::expand_model(*back->model, *model::expansion_layers(6, 0, 3));
  ASSERT_TRUE(e2.ok());
  // 0 1 2* | 2*' 3 4 5* | 5*'
  EXPECT_EQ((*e2)->config().added_layers, (std::vector<int>{2, 3, 6, 7}));
  std::filesystem::remove(path);
}

TEST(Expand, FileErrorsLeaveNothingBehind) {
  const std::string out = ::testing::TempDir() + "/never.gguf";
  std::filesystem::remove(out);
  model::ExpandFileOptions o;
  o.every = 2;
  EXPECT_FALSE(model::expand_file(::testing::TempDir() + "/missing.gguf", out, o).ok());
  EXPECT_FALSE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace longctx
