// The whole model against PyTorch (tests/golden/make_model_golden.py, float64): logits, loss and
// the gradient of every parameter, for each positional scheme and MHA / GQA / MQA, per-layer
// attention patterns (sliding window, BigBird without random blocks) and RoPE scaling (linear, YaRN).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "golden/golden_file.h"
#include "model/model.h"
#include "model/test_util.h"

namespace longctx {
namespace {

std::vector<std::string> golden_files() {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(std::string(LONGCTX_SOURCE_DIR) + "/tests/golden"))
    if (e.path().extension() == ".bin" && e.path().filename().string().rfind("model_", 0) == 0)
      out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// max |a - b| / (max |b| + 1e-6): relative to the tensor's scale, so tiny entries do not dominate.
double rel_err(const float* a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < b.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  // A reference that is zero up to rounding (a key bias without RoPE shifts a whole score row, so its
  // gradient vanishes) is checked in absolute terms.
  return den < 1e-6 ? num * 1e3 : num / den;
}

class ModelGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGolden, LogitsLossAndGradientsMatchPyTorch) {
  std::string err;
  auto g = testing::load_golden(GetParam(), &err);
  ASSERT_TRUE(g.has_value()) << err;
  const model::ModelConfig cfg = testing::config_from_json(g->config_json);
  ASSERT_TRUE(cfg.validate().ok()) << cfg.validate().message();
  model::Model m(cfg);
  int matched = 0;
  for (const auto& t : m.layout().tensors()) {
    auto it = g->tensors.find(t.name);
    ASSERT_NE(it, g->tensors.end()) << "golden file lacks " << t.name;
    ASSERT_EQ(it->second.shape, t.shape) << t.name;
    std::copy(it->second.data.begin(), it->second.data.end(), m.params() + t.offset);
    ++matched;
  }
  // Every parameter in the golden file is one of ours (no tensor silently unused).
  int golden_params = 0;
  for (const auto& [name, t] : g->tensors)
    if (name != "logits" && (name.size() < 5 || name.substr(name.size() - 5) != ".grad")) ++golden_params;
  EXPECT_EQ(matched, golden_params);

  ThreadPool pool(2);
  Arena arena;
  const int64_t B = g->batch, T = g->seq_len, V = cfg.vocab_size;
  std::vector<float> logits(B * T * V);
  m.forward_logits(pool, arena, g->tokens.data(), B, T, logits.data());
  EXPECT_LT(rel_err(logits.data(), g->tensors.at("logits").data), 1e-5) << "logits";

  m.zero_grads();
  const double loss_sum =
      m.forward_backward(pool, arena, g->tokens.data(), g->targets.data(), B, T, 1.0f / static_cast<float>(B * T));
  EXPECT_NEAR(loss_sum / (B * T), g->loss, 1e-5 * std::fabs(g->loss));
  for (const auto& t : m.layout().tensors()) {
    const auto& ref = g->tensors.at(t.name + ".grad").data;
    const double e = rel_err(m.grads() + t.offset, ref);
    EXPECT_LT(e, 1e-4) << "gradient of " << t.name;
  }
}

INSTANTIATE_TEST_SUITE_P(AllConfigs, ModelGolden, ::testing::ValuesIn(golden_files()),
                         [](const auto& info) {
                           std::string n = std::filesystem::path(info.param).stem().string();
                           for (char& c : n)
                             if (!isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

}  // namespace
}  // namespace longctx
