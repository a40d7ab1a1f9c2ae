// attention::attention_mass against the attention weights of the reference attention: for every
// key, the weights P(t, h, j) = exp(score - lse) that queries t of heads h give it, with the
// reference's log-sum-exp and scores written out here in double, summed over t and h. Grouped
// heads, ALiBi, a sliding window, a chunk of queries after a prefix (q_pos0 > 0), keys given back
// (kv_first), and K read contiguous or from head-major pages.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "attention/attribution.h"
#include "attention/reference.h"
#include "core/rng.h"
#include "position/alibi.h"

namespace longctx::attention {
namespace {

struct Case {
  int heads, kv_heads;
  bool alibi;
  Pattern pattern;
  int64_t seq_len, kv_len, kv_first;
  bool paged;
};

class AttributionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttributionTest, EqualsTheReferenceWeightsSummedOverRowsAndHeads) {
  const Case c = GetParam();
  const int hd = 16;
  AttentionDims d;
  d.batch = 1;
  d.seq_len = c.seq_len;
  d.kv_len = c.kv_len;
  d.q_pos0 = c.kv_len - c.seq_len;
  d.heads = c.heads;
  d.kv_heads = c.kv_heads;
  d.head_dim = hd;
  d.q_stride = int64_t(c.heads) * hd;
  d.kv_stride = int64_t(c.kv_heads) * hd;
  d.kv_batch_stride = c.kv_len * d.kv_stride;
  Rng rng(11);
  std::vector<float> q(c.seq_len * d.q_stride), k(c.kv_len * d.kv_stride), v(k.size());
  for (auto* x : {&q, &k, &v})
    for (float& f : *x) f = static_cast<float>(rng.normal());
  std::vector<float> slopes = c.alibi ? position::alibi_slopes(c.heads) : std::vector<float>{};
  const MaskView mask(c.pattern, c.kv_len, d.q_pos0, d.q_pos0 + c.seq_len);
  const AttentionSpec spec{&mask, slopes.empty() ? nullptr : slopes.data()};
  ThreadPool pool(2);
  // The reference's log-sum-exp (without kv_first: keys before it are then masked by hand below).
  std::vector<float> out(q.size()), lse(c.heads * c.seq_len);
  {
    // Keys before kv_first are hidden from every query: the reference sees them as masked by
    // running over the keys from kv_first on, as a cache that gave them back does.
    AttentionDims r = d;
    r.kv_first = 0;
    std::vector<float> kk = k;
    for (int64_t j = 0; j < c.kv_first; ++j)
      for (int64_t e = 0; e < d.kv_stride; ++e) kk[j * d.kv_stride + e] = 0;
    if (c.kv_first == 0) {
      reference_forward(pool, r, spec, q.data(), kk.data(), v.data(), out.data(), lse.data());
    } else {
      // lse over the visible keys from kv_first: computed here in double.
      for (int h = 0; h < c.heads; ++h)
        for (int64_t t = 0; t < c.seq_len; ++t) {
          double m = -INFINITY, sum = 0;
          std::vector<double> s;
          for (int64_t j = c.kv_first; j < c.kv_len; ++j) {
            if (!mask.visible(d.q_pos0 + t, j)) continue;
            double dot = 0;
            for (int e = 0; e < hd; ++e) dot += double(q[t * d.q_stride + h * hd + e]) * k[j * d.kv_stride + (h / (c.heads / c.kv_heads)) * hd + e];
            s.push_back(dot / std::sqrt(double(hd)) - (c.alibi ? slopes[h] * double(d.q_pos0 + t - j) : 0.0));
            m = std::max(m, s.back());
          }
          for (double x : s) sum += std::exp(x - m);
          lse[h * c.seq_len + t] = static_cast<float>(m + std::log(sum));
        }
    }
  }
  // The weights, in double, summed over rows and heads.
  std::vector<double> want(c.kv_len, 0.0);
  const int group = c.heads / c.kv_heads;
  for (int h = 0; h < c.heads; ++h)
    for (int64_t t = 0; t < c.seq_len; ++t)
      for (int64_t j = c.kv_first; j < c.kv_len; ++j) {
        const int64_t qpos = d.q_pos0 + t;
        if (!mask.visible(qpos, j)) continue;
        double dot = 0;
        for (int e = 0; e < hd; ++e) dot += double(q[t * d.q_stride + h * hd + e]) * k[j * d.kv_stride + (h / group) * hd + e];
        const double score = dot / std::sqrt(double(hd)) - (c.alibi ? slopes[h] * double(qpos - j) : 0.0);
        want[j] += std::exp(score - lse[h * c.seq_len + t]);
      }
  // Ours: K contiguous, or in head-major pages of 8 rows.
  d.kv_first = c.kv_first;
  std::vector<double> got(c.kv_len, 0.0);
  std::vector<std::vector<uint8_t>> page_bytes;
  std::vector<const uint8_t*> pages;
  KvView kv{k.data(), 0};
  if (c.paged) {
    const int shift = 3;
    const int64_t rows = int64_t{1} << shift, row_bytes = hd * 4, head_stride = rows * row_bytes;
    for (int64_t p0 = 0; p0 < c.kv_len; p0 += rows) {
      page_bytes.emplace_back(c.kv_heads * head_stride, 0);
      for (int64_t j = p0; j < std::min(c.kv_len, p0 + rows); ++j)
        for (int g = 0; g < c.kv_heads; ++g)
          std::memcpy(page_bytes.back().data() + g * head_stride + (j - p0) * row_bytes, k.data() + j * d.kv_stride + g * hd,
                      row_bytes);
    }
    for (auto& p : page_bytes) pages.push_back(p.data());
    kv = KvView{nullptr, 0, pages.data(), shift, row_bytes, head_stride};
  }
  attention_mass(pool, d, spec, q.data(), kv, lse.data(), got.data());
  double total = 0;
  for (int64_t j = 0; j < c.kv_len; ++j) {
    EXPECT_NEAR(got[j], want[j], 1e-5 * (1 + want[j])) << "key " << j;
    total += got[j];
  }
  // Each row of each head spreads a weight of 1 over its keys.
  EXPECT_NEAR(total, double(c.heads) * c.seq_len, 1e-4 * c.heads * c.seq_len);
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, AttributionTest,
    ::testing::Values(Case{4, 4, false, Causal{}, 1, 37, 0, false},      // a decoding step
                      Case{6, 2, true, Causal{}, 5, 50, 0, true},        // GQA, ALiBi, a chunk, pages
                      Case{4, 1, false, SlidingWindow{12}, 3, 40, 0, true},  // MQA, a window
                      Case{4, 2, false, Causal{}, 2, 45, 17, true},       // keys given back
                      Case{2, 2, false, Full{}, 9, 9, 0, false}));        // an encoder's pass

}  // namespace
}  // namespace longctx::attention
