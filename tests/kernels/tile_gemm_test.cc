// tile_gemm_serial (AVX-512 register blocks) against a scalar twin with double sums, in every
// layout, with row and column remainders, alpha/beta, NaN in C under beta 0 and untouched
// padding. The bound is fp32 summation: (K + 2) * 2^-23 * sum |a b| (with headroom 2x).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "kernels/tile_gemm.h"

namespace longctx::kernels {
namespace {

std::vector<float> randv(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

struct Case {
  int64_t M, N, K;
  bool ta, tb;
  float alpha, beta;
};

void check(const Case& c) {
  const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 5, ldc = c.N + 2;
  const auto A = randv((c.ta ? c.K : c.M) * lda + 1, 1 + c.M), B = randv((c.tb ? c.N : c.K) * ldb + 1, 2 + c.N);
  auto C = randv(c.M * ldc, 3);
  if (c.beta == 0.0f)
    for (int64_t i = 0; i < c.M * ldc; i += 7) C[i] = NAN;  // beta == 0 must not read C
  const auto C0 = C;
  tile_gemm_serial(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  for (int64_t m = 0; m < c.M; ++m) {
    for (int64_t n = 0; n < ldc; ++n) {
      const float got = C[m * ldc + n];
      if (n >= c.N) {  // padding columns are never written
        EXPECT_TRUE(std::isnan(C0[m * ldc + n]) ? std::isnan(got) : got == C0[m * ldc + n]) << m << "," << n;
        continue;
      }
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const double a = c.ta ? A[k * lda + m] : A[m * lda + k];
        const double b = c.tb ? B[n * ldb + k] : B[k * ldb + n];
        sum += a * b;
        mag += std::fabs(a * b);
      }
      const double c0 = c.beta == 0.0f ? 0.0 : double(C0[m * ldc + n]);
      const double ref = c.alpha * sum + c.beta * c0;
      const double bound =
          2.0 * ((c.K + 2) * std::ldexp(1.0, -23) * (std::fabs(c.alpha) * mag + std::fabs(c.beta * c0)) + 1e-30);
      ASSERT_LE(std::fabs(got - ref), bound) << "M" << c.M << " N" << c.N << " K" << c.K << " ta" << c.ta << " tb"
                                             << c.tb << " at " << m << "," << n;
    }
  }
}

TEST(TileGemm, EveryLayoutAndRemainder) {
  if (!tile_gemm_supported()) GTEST_SKIP() << "no AVX-512F";
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (int64_t M : {1, 5, 6, 7, 13, 24})
        for (int64_t N : {1, 15, 16, 17, 64, 65, 130})
          for (int64_t K : {0, 1, 17, 64}) check({M, N, K, ta, tb, 1.0f, 0.0f});
}

TEST(TileGemm, AlphaBeta) {
  if (!tile_gemm_supported()) GTEST_SKIP() << "no AVX-512F";
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      check({12, 70, 33, ta, tb, 0.125f, 1.0f});
      check({7, 64, 256, ta, tb, -2.0f, 0.5f});
      check({9, 33, 5, ta, tb, 1.0f, 0.0f});
    }
}

// The attention engine's shapes: a 256 x 256 score tile over head_dim 64 (NT), P V over a key
// tile (NN), and the backward's transposed-A products (TN).
TEST(TileGemm, AttentionTileShapes) {
  if (!tile_gemm_supported()) GTEST_SKIP() << "no AVX-512F";
  check({256, 256, 64, false, true, 1.0f, 0.0f});
  check({256, 64, 256, false, false, 1.0f, 1.0f});
  check({256, 64, 256, true, false, 1.0f, 1.0f});
  check({200, 128, 96, false, true, 0.125f, 0.0f});
}

}  // namespace
}  // namespace longctx::kernels
