// infer::Sampler against a plain twin written here (sort everything, softmax, min-p, top-p, the
// llama.cpp repeat-penalty rule): over many draws every token drawn is one the twin keeps, and
// each kept token is drawn as often as the twin's probability says (within 5 standard
// deviations, plus 3), for top-k on and off, top-p, min-p and temperatures; temperature 0 is argmax.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "core/rng.h"
#include "infer/sampler.h"

namespace longctx {
namespace {

// The distribution the options describe: token -> probability (zero for those cut).
std::map<int32_t, double> twin(std::vector<float> logits, const infer::SamplerOptions& o,
                               const std::vector<int32_t>& history) {
  if (o.repeat_penalty != 1.0f) {
    std::vector<bool> seen(logits.size());
    const size_t from = history.size() > size_t(o.repeat_last_n) ? history.size() - o.repeat_last_n : 0;
    for (size_t i = from; i < history.size(); ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= static_cast<int32_t>(logits.size()) || seen[t]) continue;
      seen[t] = true;
      logits[t] = logits[t] > 0 ? logits[t] / o.repeat_penalty : logits[t] * o.repeat_penalty;
    }
  }
  std::vector<std::pair<double, int32_t>> c;
  for (size_t i = 0; i < logits.size(); ++i) c.emplace_back(double(logits[i]) / o.temp, int32_t(i));
  std::sort(c.begin(), c.end(), [](auto& a, auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
  size_t n = o.top_k > 0 ? std::min(c.size(), size_t(o.top_k)) : c.size();
  const double top = c[0].first;
  double z = 0;
  for (size_t i = 0; i < n; ++i) z += std::exp(c[i].first - top);
  for (size_t i = 0; i < n; ++i) c[i].first = std::exp(c[i].first - top) / z;
  if (o.min_p > 0) {
    size_t keep = 1;
    while (keep < n && c[keep].first >= o.min_p * c[0].first) ++keep;
    n = keep;
  }
  if (o.top_p < 1) {
    double cum = 0;
    size_t keep = 0;
    while (keep < n) {
      cum += c[keep++].first;
      if (cum >= o.top_p) break;
    }
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += c[i].first;
  std::map<int32_t, double> p;
  for (size_t i = 0; i < n; ++i) p[c[i].second] = c[i].first / total;
  return p;
}

struct Case {
  float temp;
  int top_k;
  float top_p, min_p, repeat_penalty;
};

class SamplerTest : public ::testing::TestWithParam<Case> {};

TEST_P(SamplerTest, DrawsFollowTheTwinsDistribution) {
  const Case k = GetParam();
  infer::SamplerOptions o;
  o.temp = k.temp;
  o.top_k = k.top_k;
  o.top_p = k.top_p;
  o.min_p = k.min_p;
  o.repeat_penalty = k.repeat_penalty;
  o.seed = 9;
  ASSERT_TRUE(o.validate().ok());
  Rng rng(3);
  const int V = 2000;
  std::vector<float> logits(V);
  for (auto& x : logits) x = static_cast<float>(rng.normal() * 2.0);
  const std::vector<int32_t> history = {5, 17, 17, 1999, 40, 2500};  // 2500: not in the vocabulary (skipped)
  const auto want = twin(logits, o, history);
  infer::Sampler s(o);
  const int N = 20000;
  std::map<int32_t, int> got;
  std::vector<float> work(V);
  for (int i = 0; i < N; ++i) {
    work = logits;
    const int32_t t = s.sample(work.data(), V, history);
    ASSERT_TRUE(want.count(t)) << "drew token " << t << ", which the twin cuts";
    ++got[t];
  }
  // Counts within 5 standard deviations of N p, plus 3 for the rare tokens (a token of
  // p = 1e-6 drawn once is no error).
  for (const auto& [t, p] : want) {
    const double expect = N * p, sd = std::sqrt(N * p * (1 - p));
    EXPECT_LE(std::fabs(got[t] - expect), 5 * sd + 3) << "token " << t << ": drawn " << got[t] << " times, twin "
                                                      << expect;
  }
}

INSTANTIATE_TEST_SUITE_P(Settings, SamplerTest,
                         ::testing::Values(Case{1.0f, 0, 1.0f, 0.0f, 1.0f},     // the whole vocabulary
                                           Case{0.7f, 0, 0.95f, 0.0f, 1.0f},    // top-p, no top-k
                                           Case{0.8f, 40, 0.95f, 0.05f, 1.1f},  // llama.cpp's defaults
                                           Case{1.5f, 0, 1.0f, 0.02f, 1.0f},    // min-p only
                                           Case{0.5f, 5, 1.0f, 0.0f, 1.3f}));   // top-k, penalty

TEST(Sampler, TemperatureZeroIsArgmax) {
  infer::SamplerOptions o;
  o.temp = 0;
  infer::Sampler s(o);
  std::vector<float> l = {0.1f, 3.0f, -1.0f, 2.9f};
  EXPECT_EQ(s.sample(l.data(), 4, {}), 1);
}

}  // namespace
}  // namespace longctx
