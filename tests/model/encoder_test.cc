// Encoders (BERT-style models: post-norm layers attending to every key, token types, an embedding
// LayerNorm, no output head) and pooled embeddings. Their numbers against transformers are in
// tests/hf/compare_bert.py; here: what survives a checkpoint, what pooling computes (against sums
// written out here), batched passes against single ones, bidirectionality, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "model/embedding.h"
#include "model/model.h"
#include "model/pretrained.h"

namespace longctx {
namespace {

model::ModelConfig encoder_config(int vocab) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = 32;
  c.ctx = 24;
  c.norm = model::NormType::kLayerNorm;
  c.norm_eps = 1e-12f;
  c.mlp = model::MlpType::kGeluErf;
  c.bias = true;
  c.tied_embeddings = false;
  c.pos = model::PosType::kLearned;
  c.encoder = true;
  c.token_types = 2;
  c.embed_norm = true;
  c.pooling = model::Pooling::kMean;
  c.normalize = true;
  model::LayerConfig l{4, 4, 8, 64};
  l.pattern = attention::Full{};
  l.blocks = {{"attention", "post_norm"}, {"feed_forward", "post_norm"}};
  c.set_uniform_layers(2, l);
  return c;
}

tokenizer::BpeTokenizer small_tokenizer() {
  tokenizer::TrainOptions topt;
  topt.vocab_size = 280;
  std::string text;
  for (int i = 0; i < 80; ++i) text += "every key is seen " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  CHECK(tok.ok());
  return std::move(*tok);
}

std::vector<float> hidden_of(model::Model& m, const std::vector<int32_t>& ids) {
  ThreadPool pool(2);
  Arena arena;
  std::vector<float> h(ids.size() * m.config().model_dim);
  m.forward_hidden(pool, arena, ids.data(), 1, static_cast<int64_t>(ids.size()), h.data());
  return h;
}

TEST(Encoder, CheckpointKeepsTheEncoderSettingsAndTheOutputs) {
  const tokenizer::BpeTokenizer tok = small_tokenizer();
  const model::ModelConfig c = encoder_config(tok.vocab_size());
  ASSERT_TRUE(c.validate().ok()) << c.validate().message();
  model::Model m(c);
  Rng rng(3);
  m.init(rng);
  EXPECT_NE(m.layout().find("token_types.weight"), nullptr);
  EXPECT_NE(m.layout().find("token_embd_norm.bias"), nullptr);
  EXPECT_NE(m.layout().find("blk.1.attn_output_norm.weight"), nullptr);
  EXPECT_NE(m.layout().find("blk.1.layer_output_norm.bias"), nullptr);
  EXPECT_EQ(m.layout().find("output_norm.weight"), nullptr);
  EXPECT_EQ(m.layout().find("output.weight"), nullptr);
  const std::string path = ::testing::TempDir() + "/encoder_roundtrip.gguf";
  ASSERT_TRUE(model::save_checkpoint(path, m, tok).ok());
  auto loaded = model::load_checkpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const model::ModelConfig& r = loaded->model->config();
  EXPECT_TRUE(r.encoder);
  EXPECT_EQ(r.token_types, 2);
  EXPECT_TRUE(r.embed_norm);
  EXPECT_EQ(r.pooling, model::Pooling::kMean);
  EXPECT_TRUE(r.normalize);
  EXPECT_EQ(r.mlp, model::MlpType::kGeluErf);
  EXPECT_EQ(r.layers[1].blocks, c.layers[1].blocks);
  EXPECT_TRUE(std::holds_alternative<attention::Full>(r.layers[1].pattern));
  const std::vector<int32_t> ids = {5, 9, 2, 77, 31, 4};
  EXPECT_EQ(hidden_of(m, ids), hidden_of(*loaded->model, ids));

  // Text commands refuse it; embedding takes it.
  model::LoadOptions text;
  auto refused = model::load_model(path, text);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("is an encoder"), std::string::npos) << refused.status().message();
  model::LoadOptions embed;
  embed.use = model::LoadOptions::Use::kEmbed;
  EXPECT_TRUE(model::load_model(path, embed).ok());
  std::filesystem::remove(path);
}

TEST(Encoder, EveryPositionSeesLaterTokens) {
  model::ModelConfig c = encoder_config(64);
  model::Model m(c);
  Rng rng(4);
  m.init(rng);
  const std::vector<float> a = hidden_of(m, {1, 2, 3, 4, 5});
  const std::vector<float> b = hidden_of(m, {1, 2, 3, 4, 6});  // only the last token differs
  const int64_t D = c.model_dim;
  double first_row = 0;
  for (int64_t i = 0; i < D; ++i) first_row = std::max(first_row, double(std::fabs(a[i] - b[i])));
  EXPECT_GT(first_row, 1e-4);  // a causal model would give exactly 0
}

TEST(Encoder, PoolingMatchesItsDefinition) {
  const int64_t n = 3, D = 4;
  const std::vector<float> h = {1, 2, 3, 4, -1, 0, 1, 2, 3, 3, 3, 3};
  std::vector<float> out(D);
  model::pool_hidden(h.data(), n, D, model::Pooling::kMean, false, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 5.0f / 3, 7.0f / 3, 3}));
  model::pool_hidden(h.data(), n, D, model::Pooling::kCls, false, out.data());
  EXPECT_EQ(out, (std::vector<float>{1, 2, 3, 4}));
  model::pool_hidden(h.data(), n, D, model::Pooling::kLast, true, out.data());
  for (float v : out) EXPECT_NEAR(v, 0.5, 1e-7);  // (3,3,3,3) / 6
}

TEST(Encoder, BatchedTextsEqualTextsAlone) {
  model::ModelConfig c = encoder_config(64);
  model::Model m(c);
  Rng rng(6);
  m.init(rng);
  const std::vector<std::vector<int32_t>> texts = {{1, 2, 3}, {4, 5, 6}, {7, 8}, {9, 10, 11}, {3, 2, 1, 0, 5}};
  ThreadPool pool(2);
  Arena arena;
  model::EmbedOptions opt = model::default_embed_options(c);
  const std::vector<float> all = model::embed_batch(m, pool, arena, texts, opt);
  const int64_t D = c.model_dim;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<float> one = model::embed_batch(m, pool, arena, {texts[i]}, opt);
    for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(one[d], all[i * D + d], 1e-6) << i;
    // And by the definition: mean of the hidden states, L2-normalised.
    const std::vector<float> h = hidden_of(m, texts[i]);
    std::vector<double> mean(D, 0.0);
    for (size_t r = 0; r < texts[i].size(); ++r)
      for (int64_t d = 0; d < D; ++d) mean[d] += h[r * D + d] / double(texts[i].size());
    double norm = 0;
    for (double v : mean) norm += v * v;
    for (int64_t d = 0; d < D; ++d) EXPECT_NEAR(one[d], mean[d] / std::sqrt(norm), 1e-6);
  }
}

TEST(Encoder, ConfigRefusesWhatItCannotRun) {
  model::ModelConfig c = encoder_config(64);
  c.encoder = false;  // a decoder attending to later tokens
  EXPECT_NE(c.validate().message().find("bidirectional"), std::string::npos) << c.validate().message();
  c = encoder_config(64);
  c.norm = model::NormType::kRmsNorm;
  EXPECT_NE(c.validate().message().find("embedding norm needs"), std::string::npos) << c.validate().message();
  c = encoder_config(64);
  c.layers[0].blocks = {{"attention", "pre_norm"}, {"feed_forward", ""}};
  EXPECT_NE(c.validate().message().find("'post_norm'"), std::string::npos) << c.validate().message();
}

}  // namespace
}  // namespace longctx
