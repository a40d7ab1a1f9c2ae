// Every SIMD / threaded kernel against its scalar twin (double accumulation), at lengths that
// exercise both the vector body and the scalar tail.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "kernels/matmul.h"
#include "kernels/norm.h"
#include "kernels/vec.h"

namespace longctx::kernels {
namespace {

std::vector<float> randv(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal() * scale);
  return v;
}

double gelu_ref(double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))); }

const int64_t kLens[] = {1, 7, 16, 33, 100, 1031};

TEST(Vec, ReductionsMatchScalar) {
  for (int64_t n : kLens) {
    auto a = randv(n, 1), b = randv(n, 2);
    double dot = 0, sum = 0, sq = 0, mx = -1e30;
    for (int64_t i = 0; i < n; ++i) {
      dot += double(a[i]) * b[i];
      sum += a[i];
      sq += double(a[i]) * a[i];
      mx = std::max(mx, double(a[i]));
    }
    EXPECT_NEAR(vec_dot(a.data(), b.data(), n), dot, 1e-5 * (1 + std::fabs(dot)) * std::sqrt(n)) << n;
    EXPECT_NEAR(vec_sum(a.data(), n), sum, 1e-5 * std::sqrt(n) * 4) << n;
    EXPECT_NEAR(vec_sum_sq(a.data(), n), sq, 1e-5 * sq) << n;
    EXPECT_EQ(vec_max(a.data(), n), static_cast<float>(mx)) << n;
  }
}

TEST(Vec, ElementwiseMatchScalar) {
  for (int64_t n : kLens) {
    auto x = randv(n, 3, 3.0), y = randv(n, 4), u = randv(n, 5), dy = randv(n, 6);
    std::vector<float> out(n), out2(n);
    auto y2 = y;
    vec_axpy(0.5f, x.data(), y2.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y2[i], y[i] + 0.5 * x[i], 1e-6) << i;
    vec_gelu(x.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], gelu_ref(x[i]), 1e-5 * (1 + std::fabs(x[i]))) << x[i];
    vec_gelu_backward(x.data(), dy.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double h = 1e-4, d = (gelu_ref(x[i] + h) - gelu_ref(x[i] - h)) / (2 * h);
      EXPECT_NEAR(out[i], dy[i] * d, 1e-4 * (1 + std::fabs(dy[i] * d))) << x[i];
    }
    auto gelu_erf_ref = [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); };
    vec_gelu_erf(x.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], gelu_erf_ref(x[i]), 1e-6 * (1 + std::fabs(x[i]))) << x[i];
    vec_gelu_erf_backward(x.data(), dy.data(), out.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double h = 1e-4, d = (gelu_erf_ref(x[i] + h) - gelu_erf_ref(x[i] - h)) / (2 * h);
      EXPECT_NEAR(out[i], dy[i] * d, 1e-5 * (1 + std::fabs(dy[i] * d))) << x[i];
    }
    vec_swiglu(x.data(), u.data(), out.data(), n);
    auto silu = [](double g) { return g / (1 + std::exp(-g)); };
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], silu(x[i]) * u[i], 1e-5 * (1 + std::fabs(out[i])));
    vec_swiglu_backward(x.data(), u.data(), dy.data(), out.data(), out2.data(), n);
    for (int64_t i = 0; i < n; ++i) {
      const double h = 1e-4, ds = (silu(x[i] + h) - silu(x[i] - h)) / (2 * h);
      EXPECT_NEAR(out[i], dy[i] * u[i] * ds, 1e-4 * (1 + std::fabs(dy[i] * u[i] * ds)));
      EXPECT_NEAR(out2[i], dy[i] * silu(x[i]), 1e-5 * (1 + std::fabs(out2[i])));
    }
    auto e = x;
    const float s = vec_exp_sum(e.data(), 1.0f, n);
    double ref_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double r = std::exp(double(x[i]) - 1.0);
      ref_sum += r;
      EXPECT_NEAR(e[i], r, 2e-6 * r + 1e-30);
    }
    EXPECT_NEAR(s, ref_sum, 1e-5 * ref_sum);
  }
}

// The softmax's range: x - sub from -100 to 0 and -inf (masked scores), against double exp of the
// same float differences; below -87 exactly 0. vec_exp_sum_nonpositive (the shorter polynomial)
// to 2e-7 relative, and each of its elements the same in a call of any length at any index.
TEST(Vec, ExpSumWideRange) {
  for (bool nonpositive : {false, true}) {
    for (int64_t n : {5, 16, 1000}) {
      std::vector<float> x(n);
      for (int64_t i = 0; i < n; ++i) x[i] = i % 97 == 3 ? -INFINITY : 10.0f - 100.0f * float(i) / float(n);
      auto e = x;
      const float s = nonpositive ? vec_exp_sum_nonpositive(e.data(), 10.0f, n) : vec_exp_sum(e.data(), 10.0f, n);
      double ref_sum = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float t = x[i] - 10.0f;
        const double r = t < -87.0f ? 0.0 : std::exp(double(t));
        ref_sum += r;
        if (r == 0) EXPECT_EQ(e[i], 0.0f) << t;
        else EXPECT_NEAR(e[i], r, (nonpositive ? 2e-7 : 4e-7) * r) << t;
        if (nonpositive) {
          float one = x[i];
          vec_exp_sum_nonpositive(&one, 10.0f, 1);
          EXPECT_EQ(one, e[i]) << "element " << i << " of " << n;
        }
      }
      EXPECT_NEAR(s, ref_sum, 1e-6 * ref_sum);
    }
  }
  // [-87, 0] at a fine grid, and differences near 0 (a few above it, as recomputed scores give).
  std::vector<float> x;
  for (float t = -87.0f; t <= 0.0f; t += 0.00131f) x.push_back(t);
  for (float t : {-1e-3f, -1e-6f, -1e-9f, -1e-30f, -1e-45f, -0.0f, 0.0f, 1e-7f, 1e-6f, 1e-3f}) x.push_back(t);
  auto e = x;
  vec_exp_sum_nonpositive(e.data(), 0.0f, static_cast<int64_t>(x.size()));
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::fabs(e[i] / std::exp(double(x[i])) - 1));
  EXPECT_LT(worst, 2e-7);
  std::printf("vec_exp_sum_nonpositive: worst relative error %.3g over %zu points\n", worst, x.size());
}

TEST(Vec, AttentionHelpersMatchScalar) {
  for (int64_t n : {1, 7, 16, 33, 300}) {
    auto x = randv(n, 11), dp = randv(n, 12);
    auto y = x;
    vec_add_ramp(y.data(), -3.25f, 0.125f, n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i] + (-3.25 + 0.125 * i), 1e-5 * (1 + std::fabs(y[i]))) << i;
    // Exactly -inf stays -inf (masked scores).
    std::vector<float> m(n, -INFINITY);
    vec_add_ramp(m.data(), 1.0f, 1.0f, n);
    for (float v : m) EXPECT_EQ(v, -INFINITY);
    auto out = dp;
    vec_softmax_backward(x.data(), out.data(), 0.5f, n);
    for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(out[i], double(x[i]) * (double(dp[i]) - 0.5), 1e-6 * (1 + std::fabs(out[i])));
  }
}

TEST(Vec, AdamWMatchesScalar) {
  const int64_t n = 1031;
  auto p = randv(n, 7), g = randv(n, 8), m = randv(n, 9, 0.1), v = randv(n, 10, 0.1);
  for (auto& x : v) x = std::fabs(x);
  auto p2 = p, m2 = m, v2 = v;
  const float lr = 1e-2f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, bc1 = 0.19f, bc2 = 0.0975f;
  vec_adamw(p2.data(), g.data(), m2.data(), v2.data(), n, lr, b1, b2, eps, wd, bc1, bc2);
  for (int64_t i = 0; i < n; ++i) {
    const double mm = b1 * double(m[i]) + (1 - b1) * double(g[i]);
    const double vv = b2 * double(v[i]) + (1 - b2) * double(g[i]) * g[i];
    const double pp = p[i] - lr * ((mm / bc1) / (std::sqrt(vv / bc2) + eps) + wd * p[i]);
    EXPECT_NEAR(m2[i], mm, 1e-6);
    EXPECT_NEAR(v2[i], vv, 1e-6);
    EXPECT_NEAR(p2[i], pp, 1e-5);
  }
}

TEST(Matmul, GemmAllTransposesMatchScalar) {
  ThreadPool pool(2);
  for (auto [M, N, K] : {std::tuple{5, 3, 7}, std::tuple{70, 130, 65}, std::tuple{129, 64, 200}}) {
    for (int ta = 0; ta < 2; ++ta) {
      for (int tb = 0; tb < 2; ++tb) {
        auto A = randv(M * K, 11), B = randv(K * N, 12), C = randv(M * N, 13);
        auto C2 = C;
        gemm(pool, ta, tb, M, N, K, 0.5f, A.data(), ta ? M : K, B.data(), tb ? K : N, 2.0f, C2.data(), N);
        for (int i = 0; i < M; ++i) {
          for (int j = 0; j < N; ++j) {
            double s = 0;
            for (int k = 0; k < K; ++k)
              s += double(ta ? A[k * M + i] : A[i * K + k]) * (tb ? B[j * K + k] : B[k * N + j]);
            ASSERT_NEAR(C2[i * N + j], 0.5 * s + 2.0 * C[i * N + j], 1e-4 * (1 + std::fabs(s))) << ta << tb;
          }
        }
      }
    }
  }
}

TEST(Norm, ForwardMatchesScalarAndBackwardMatchesFiniteDifferences) {
  ThreadPool pool(2);
  const int64_t rows = 9, dim = 37;
  auto x = randv(rows * dim, 21, 2.0), w = randv(dim, 22), b = randv(dim, 23), dy = randv(rows * dim, 24);
  for (int layer_norm = 0; layer_norm < 2; ++layer_norm) {
    std::vector<float> y(rows * dim), mean(rows), rstd(rows);
    auto fwd_ref = [&](const std::vector<double>& xd, int64_t r, int64_t i) {
      double mu = 0, var = 0;
      for (int64_t j = 0; j < dim; ++j) mu += xd[r * dim + j];
      mu = layer_norm ? mu / dim : 0;
      for (int64_t j = 0; j < dim; ++j) var += (xd[r * dim + j] - mu) * (xd[r * dim + j] - mu);
      const double rs = 1 / std::sqrt(var / dim + 1e-5);
      return (xd[r * dim + i] - mu) * rs * w[i] + (layer_norm ? b[i] : 0.0);
    };
    if (layer_norm) layernorm_forward(pool, x.data(), rows, dim, w.data(), b.data(), 1e-5f, y.data(), mean.data(), rstd.data());
    else rmsnorm_forward(pool, x.data(), rows, dim, w.data(), 1e-5f, y.data(), rstd.data());
    std::vector<double> xd(x.begin(), x.end());
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < dim; ++i) EXPECT_NEAR(y[r * dim + i], fwd_ref(xd, r, i), 1e-5);
    // Backward of L = sum(dy * y) against central differences of the double-precision twin.
    std::vector<float> dx(rows * dim, 0.0f), dw(dim, 0.0f), db(dim, 0.0f);
    if (layer_norm) layernorm_backward(pool, x.data(), dy.data(), rows, dim, w.data(), mean.data(), rstd.data(), dx.data(), dw.data(), db.data());
    else rmsnorm_backward(pool, x.data(), dy.data(), rows, dim, w.data(), rstd.data(), dx.data(), dw.data());
    auto loss = [&](const std::vector<double>& xx) {
      double L = 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < dim; ++i) L += dy[r * dim + i] * fwd_ref(xx, r, i);
      return L;
    };
    for (int64_t k = 0; k < rows * dim; k += 7) {
      auto xp = xd, xm = xd;
      xp[k] += 1e-6;
      xm[k] -= 1e-6;
      EXPECT_NEAR(dx[k], (loss(xp) - loss(xm)) / 2e-6, 1e-3) << "dx " << k;
    }
    for (int64_t i = 0; i < dim; ++i) {
      double ref = 0, refb = 0;
      for (int64_t r = 0; r < rows; ++r) {
        ref += dy[r * dim + i] * (fwd_ref(xd, r, i) - (layer_norm ? b[i] : 0.0)) / w[i];
        refb += dy[r * dim + i];
      }
      EXPECT_NEAR(dw[i], ref, 1e-3) << "dw " << i;
      if (layer_norm) EXPECT_NEAR(db[i], refb, 1e-4);
    }
  }
}

TEST(CrossEntropy, LossAndGradientMatchScalar) {
  ThreadPool pool(2);
  const int64_t rows = 6, V = 301;
  auto logits = randv(rows * V, 31, 3.0);
  std::vector<int32_t> targets = {0, 5, 300, -1, 17, 150};
  std::vector<float> grad(rows * V);
  auto l2 = logits;
  const double loss = cross_entropy(pool, l2.data(), targets.data(), rows, V, grad.data(), 0.5f);
  double ref = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (targets[r] < 0) {
      for (int64_t v = 0; v < V; ++v) EXPECT_EQ(grad[r * V + v], 0.0f);
      continue;
    }
    double m = -1e30, s = 0;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, double(logits[r * V + v]));
    for (int64_t v = 0; v < V; ++v) s += std::exp(logits[r * V + v] - m);
    ref += std::log(s) + m - logits[r * V + targets[r]];
    for (int64_t v = 0; v < V; ++v) {
      const double p = std::exp(logits[r * V + v] - m) / s;
      EXPECT_NEAR(grad[r * V + v], 0.5 * (p - (v == targets[r])), 1e-6);
    }
  }
  EXPECT_NEAR(loss, ref, 1e-5 * ref);
}

}  // namespace
}  // namespace longctx::kernels
