// gemm_bf16 (AMX) against its scalar twin: the same bf16 rounding of the operands, sums in double.
// The bound is fp32 summation of exact products: K * 2^-23 * sum |a b| (with headroom 2x), far
// below the 2^-8 relative change that skipping the bf16 rounding in the twin would make (checked:
// the fp32 product differs from the twin by much more than the bound).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "quant/fp16.h"

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

// Largest |C - ref| / bound over the outputs (<= 1 passes), with op(A) / op(B) in the given
// layouts and leading dimensions larger than the rows.
double worst_ratio(ThreadPool& pool, const Case& c, bool fp32_instead = false) {
  const int64_t lda = (c.ta ? c.M : c.K) + 3, ldb = (c.tb ? c.K : c.N) + 5, ldc = c.N + 2;
  const auto A = randv((c.ta ? c.K : c.M) * lda, 1 + c.M), B = randv((c.tb ? c.N : c.K) * ldb, 2 + c.N);
  auto C = randv(c.M * ldc, 3);
  if (c.beta == 0.0f)
    for (int64_t i = 0; i < c.M * ldc; i += 7) C[i] = NAN;  // beta == 0 must not read C
  const auto ref0 = C;
  auto ref = C;
  if (fp32_instead)
    gemm(pool, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  else
    gemm_bf16(pool, c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, C.data(), ldc);
  gemm_bf16_reference(c.ta, c.tb, c.M, c.N, c.K, c.alpha, A.data(), lda, B.data(), ldb, c.beta, ref.data(), ldc);
  double worst = 0;
  for (int64_t i = 0; i < c.M; ++i) {
    for (int64_t j = 0; j < c.N; ++j) {
      double mag = 0;
      for (int64_t k = 0; k < c.K; ++k) {
        const float a = c.ta ? A[k * lda + i] : A[i * lda + k];
        const float b = c.tb ? B[j * ldb + k] : B[k * ldb + j];
        mag += std::fabs(double(a) * b);
      }
      const double old = c.beta != 0.0f ? std::fabs(c.beta * double(ref[i * ldc + j])) : 0.0;
      const double bound = 2.0 * (c.K + 2) * 0x1p-23 * std::fabs(c.alpha) * mag + 0x1p-22 * old + 1e-30;
      const double err = std::fabs(double(C[i * ldc + j]) - ref[i * ldc + j]);
      worst = std::max(worst, std::isnan(err) ? 1e30 : err / bound);
    }
    // Columns past N (the padding of ldc) are untouched.
    for (int64_t j = c.N; j < ldc; ++j)
      EXPECT_EQ(std::bit_cast<uint32_t>(C[i * ldc + j]), std::bit_cast<uint32_t>(ref0[i * ldc + j]));
  }
  return worst;
}

TEST(GemmBf16, MatchesTheScalarTwinInEveryLayout) {
  if (!gemm_bf16_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  ThreadPool pool(2);
  const Case cases[] = {
      {1, 1, 1, false, false, 1.0f, 0.0f},     {5, 7, 3, false, true, 1.0f, 0.0f},
      {32, 32, 32, false, true, 1.0f, 0.0f},   {33, 47, 65, false, true, 1.0f, 1.0f},
      {100, 70, 130, false, false, 0.5f, 1.0f}, {70, 100, 130, true, false, 1.0f, 1.0f},
      {64, 96, 200, true, true, -2.0f, 0.5f},  {17, 300, 31, true, false, 1.0f, 0.0f},
      {300, 17, 97, false, true, 1.0f, 1.0f},  {128, 384, 384, false, true, 1.0f, 0.0f},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(::testing::Message() << c.M << "x" << c.N << "x" << c.K << " ta=" << c.ta << " tb=" << c.tb
                                      << " alpha=" << c.alpha << " beta=" << c.beta);
    EXPECT_LE(worst_ratio(pool, c), 1.0);
  }
}

TEST(GemmBf16, TheBoundSeesTheBf16Rounding) {
  // The fp32 product (no rounding of the operands) must fail the same bound: the test can fail.
  ThreadPool pool(1);
  EXPECT_GT(worst_ratio(pool, {40, 40, 256, false, true, 1.0f, 0.0f}, /*fp32_instead=*/true), 10.0);
}

TEST(GemmBf16, ResultsDoNotDependOnTheThreadCount) {
  if (!gemm_bf16_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  const int64_t M = 200, N = 150, K = 333;
  const auto A = randv(M * K, 5), B = randv(N * K, 6);
  std::vector<float> c1(M * N), c2(M * N);
  ThreadPool p1(1), p2(2);
  gemm_bf16(p1, false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, c1.data(), N);
  gemm_bf16(p2, false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, c2.data(), N);
  EXPECT_EQ(c1, c2);
}

TEST(GemmBf16, PackedWeightsGiveTheSameBits) {
  if (!gemm_bf16_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  ThreadPool pool(2);
  // Small weights take the one-pass path (A packed per block row), large ones the two-pass one.
  for (int64_t N : {40, 384, 1200}) {
    for (int64_t M : {1, 31, 97}) {
      const int64_t K = N == 1200 ? 700 : 130;
      const auto x = randv(M * K, 10 + M), w = randv(N * K, 11 + N), b = randv(N, 12), r = randv(M * N, 13);
      std::vector<uint16_t> wp(static_cast<size_t>(bf16_packed_weight_elems(N, K)) + 32);
      uint16_t* wpa = reinterpret_cast<uint16_t*>((reinterpret_cast<uintptr_t>(wp.data()) + 63) & ~uintptr_t{63});
      bf16_pack_weight(pool, w.data(), N, K, wpa);
      std::vector<float> y1(M * N), y2(M * N), y3(M * N), ref(M * N);
      gemm_bf16(pool, false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, y1.data(), N);
      gemm_bf16_packed(pool, M, N, K, 1.0f, x.data(), K, wpa, 0.0f, y2.data(), N);
      EXPECT_EQ(y1, y2) << M << "x" << N;
      // Bias and residual in the epilogue, packed or not, against the twin.
      linear_forward_residual_bf16(pool, x.data(), M, K, w.data(), b.data(), N, r.data(), y1.data());
      y3 = r;  // in place: y aliases the residual
      linear_forward_residual_bf16(pool, x.data(), M, K, w.data(), b.data(), N, y3.data(), y3.data(), wpa);
      linear_forward_bf16(pool, x.data(), M, K, w.data(), b.data(), N, y2.data(), wpa);
      gemm_bf16_reference(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, ref.data(), N);
      for (int64_t i = 0; i < M * N; ++i) {
        const double tol = 1e-5 * (std::fabs(ref[i]) + 30);
        ASSERT_NEAR(y2[i], ref[i] + b[i % N], tol) << i;
        ASSERT_NEAR(y1[i], ref[i] + b[i % N] + r[i], tol) << i;
        ASSERT_EQ(y1[i], y3[i]) << i;
      }
    }
  }
}

TEST(GemmBf16, LinearBackwardMatchesTheTwin) {
  if (!gemm_bf16_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  ThreadPool pool(2);
  const int64_t rows = 50, in = 40, out = 24;
  const auto x = randv(rows * in, 7), dy = randv(rows * out, 8), w = randv(out * in, 9);
  std::vector<float> dx(rows * in, 1.0f), dw(out * in, 0.5f), db(out, 0.25f);
  auto dx_ref = dx, dw_ref = dw;
  linear_backward_bf16(pool, x.data(), dy.data(), rows, in, w.data(), out, dx.data(), true, dw.data(), db.data());
  gemm_bf16_reference(false, false, rows, in, out, 1.0f, dy.data(), out, w.data(), in, 1.0f, dx_ref.data(), in);
  gemm_bf16_reference(true, false, out, in, rows, 1.0f, dy.data(), out, x.data(), in, 1.0f, dw_ref.data(), in);
  for (int64_t i = 0; i < rows * in; ++i) EXPECT_NEAR(dx[i], dx_ref[i], 1e-4) << i;
  for (int64_t i = 0; i < out * in; ++i) EXPECT_NEAR(dw[i], dw_ref[i], 1e-4) << i;
  for (int64_t o = 0; o < out; ++o) {
    double s = 0.25;
    for (int64_t r = 0; r < rows; ++r) s += dy[r * out + o];
    EXPECT_NEAR(db[o], s, 1e-4);
  }
}

}  // namespace
}  // namespace longctx::kernels
