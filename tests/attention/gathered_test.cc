// Attention over gathered rows (AttentionDims::q_pos / k_pos: CoLT5's heavy attention between
// routed queries and routed keys at their own positions) against a double-precision twin written
// here: scores of every (query, key) pair with k_pos <= q_pos (Causal) or every pair (Full), the
// ALiBi term from the positions, softmax, and the textbook backward (dS = P (dP - rowsum(dO O))).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/attention.h"
#include "core/rng.h"
#include "position/alibi.h"

namespace longctx {
namespace {

struct Case {
  int heads, kv_heads;
  bool alibi, full;
  int64_t n_q, n_k, tile_rows, tile_cols;
};

class GatheredAttention : public ::testing::TestWithParam<Case> {};

// Ascending distinct positions: n of [0, span), drawn.
std::vector<int64_t> positions(Rng& rng, int64_t n, int64_t span) {
  std::vector<int64_t> all(span);
  for (int64_t i = 0; i < span; ++i) all[i] = i;
  for (int64_t i = 0; i < n; ++i) std::swap(all[i], all[i + rng.below(span - i)]);
  all.resize(n);
  std::sort(all.begin(), all.end());
  return all;
}

TEST_P(GatheredAttention, ForwardAndBackwardMatchDoubleTwin) {
  const Case c = GetParam();
  const int hd = 8, H = c.heads, G = c.kv_heads;
  const int64_t B = 2, TQ = c.n_q, TK = c.n_k;
  Rng rng(31 + TQ * 7 + TK);
  // Queries and keys from one sequence of 3 * max positions: some queries see no key.
  const int64_t span = 3 * std::max(TQ, TK);
  std::vector<int64_t> qp = positions(rng, TQ, span), kp = positions(rng, TK, span);
  for (auto& x : kp) ++x;  // keys at 1.., the first query at 0: it sees no key
  qp[0] = 0;
  auto randv = [&](int64_t n) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(rng.normal());
    return v;
  };
  const int64_t qd = int64_t(H) * hd, kvd = int64_t(G) * hd;
  std::vector<float> q = randv(B * TQ * qd), k = randv(B * TK * kvd), v = randv(B * TK * kvd), dout = randv(B * TQ * qd);
  std::vector<float> slopes = position::alibi_slopes(H);

  attention::AttentionDims d;
  d.batch = B;
  d.seq_len = TQ;
  d.kv_len = TK;
  d.heads = H;
  d.kv_heads = G;
  d.head_dim = hd;
  d.q_stride = qd;
  d.kv_stride = kvd;
  d.kv_batch_stride = TK * kvd;
  d.q_pos = qp.data();
  d.k_pos = kp.data();
  const attention::Pattern pattern = c.full ? attention::Pattern{attention::Full{}} : attention::Pattern{attention::Causal{}};
  const attention::MaskView mask(pattern, TK);
  const attention::AttentionSpec spec{&mask, c.alibi ? slopes.data() : nullptr};
  attention::TileSizes ts;
  ts.query_rows = c.tile_rows;
  ts.key_cols = c.tile_cols;
  ThreadPool pool(2);
  std::vector<float> out(B * TQ * qd), lse(B * H * TQ), dq(B * TQ * qd), dk(B * TK * kvd, 0.0f), dv(B * TK * kvd, 0.0f);
  attention::tiled_forward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), ts);
  attention::tiled_backward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(),
                            dk.data(), dv.data(), ts);

  // The twin.
  const double scale = 1.0 / std::sqrt(double(hd));
  std::vector<double> rdq(dq.size(), 0.0), rdk(dk.size(), 0.0), rdv(dv.size(), 0.0);
  double worst_out = 0, worst_lse = 0;
  int blind = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      const int g = h / (H / G);
      for (int64_t t = 0; t < TQ; ++t) {
        const float* qr = &q[(b * TQ + t) * qd + h * hd];
        std::vector<double> s(TK, -INFINITY), p(TK, 0.0);
        double mx = -INFINITY;
        for (int64_t j = 0; j < TK; ++j) {
          if (!c.full && kp[j] > qp[t]) continue;
          const float* kr = &k[(b * TK + j) * kvd + g * hd];
          double dot = 0;
          for (int i = 0; i < hd; ++i) dot += double(qr[i]) * kr[i];
          s[j] = scale * dot - (c.alibi ? slopes[h] * double(qp[t] - kp[j]) : 0.0);
          mx = std::max(mx, s[j]);
        }
        const float* o = &out[(b * TQ + t) * qd + h * hd];
        const float got_lse = lse[(b * H + h) * TQ + t];
        if (mx == -INFINITY) {  // sees no key: zeros, lse -inf, no gradient
          ++blind;
          EXPECT_EQ(got_lse, -INFINITY);
          for (int i = 0; i < hd; ++i) EXPECT_EQ(o[i], 0.0f);
          continue;
        }
        double sum = 0;
        for (int64_t j = 0; j < TK; ++j) sum += (p[j] = std::exp(s[j] - mx));
        for (auto& x : p) x /= sum;
        worst_lse = std::max(worst_lse, std::fabs(got_lse - (mx + std::log(sum))));
        std::vector<double> ro(hd, 0.0);
        for (int64_t j = 0; j < TK; ++j)
          for (int i = 0; i < hd; ++i) ro[i] += p[j] * v[(b * TK + j) * kvd + g * hd + i];
        for (int i = 0; i < hd; ++i) worst_out = std::max(worst_out, std::fabs(ro[i] - o[i]));
        const float* dor = &dout[(b * TQ + t) * qd + h * hd];
        double D = 0;
        for (int i = 0; i < hd; ++i) D += double(dor[i]) * ro[i];
        for (int64_t j = 0; j < TK; ++j) {
          if (p[j] == 0) continue;
          const float* kr = &k[(b * TK + j) * kvd + g * hd];
          const float* vr = &v[(b * TK + j) * kvd + g * hd];
          double dp = 0;
          for (int i = 0; i < hd; ++i) dp += double(dor[i]) * vr[i];
          const double ds = p[j] * (dp - D);
          for (int i = 0; i < hd; ++i) {
            rdq[(b * TQ + t) * qd + h * hd + i] += scale * ds * kr[i];
            rdk[(b * TK + j) * kvd + g * hd + i] += scale * ds * qr[i];
            rdv[(b * TK + j) * kvd + g * hd + i] += p[j] * dor[i];
          }
        }
      }
    }
  if (!c.full) EXPECT_GT(blind, 0);  // the case of a query before every key is covered
  EXPECT_LT(worst_out, 2e-5);
  EXPECT_LT(worst_lse, 2e-5);
  auto worst = [](const std::vector<float>& a, const std::vector<double>& r) {
    double w = 0;
    for (size_t i = 0; i < a.size(); ++i) w = std::max(w, std::fabs(a[i] - r[i]) / (1.0 + std::fabs(r[i])));
    return w;
  };
  EXPECT_LT(worst(dq, rdq), 5e-5);
  EXPECT_LT(worst(dk, rdk), 5e-5);
  EXPECT_LT(worst(dv, rdv), 5e-5);
}

INSTANTIATE_TEST_SUITE_P(Cases, GatheredAttention,
                         ::testing::Values(Case{4, 4, false, false, 13, 21, 0, 0}, Case{4, 2, true, false, 13, 21, 0, 0},
                                           Case{4, 1, true, false, 40, 70, 8, 16}, Case{6, 3, true, false, 70, 40, 4, 8},
                                           Case{4, 2, false, true, 9, 30, 0, 0}, Case{2, 2, true, false, 1, 50, 0, 0},
                                           Case{4, 2, true, false, 300, 600, 0, 0}));

}  // namespace
}  // namespace longctx
