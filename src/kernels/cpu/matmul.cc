#include "kernels/matmul.h"

#include <cblas.h>

#include "core/check.h"
#include "kernels/vec.h"

namespace longctx::kernels {

void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(M), static_cast<blasint>(N), static_cast<blasint>(K), alpha, A,
              static_cast<blasint>(lda), B, static_cast<blasint>(ldb), beta, C, static_cast<blasint>(ldc));
}

void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int T = pool.threads();
  // Small products are not worth waking the pool for.
  if (T == 1 || M * N * K < 64 * 64 * 64) {
    gemm_serial(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (M >= N) {
    // Rows of C come from rows of op(A): A itself (row r at A + r*lda) or, transposed, column r.
    pool.parallel_range(M, [&](int64_t b, int64_t e, int) {
      const float* a = trans_a ? A + b : A + b * lda;
      gemm_serial(trans_a, trans_b, e - b, N, K, alpha, a, lda, B, ldb, beta, C + b * ldc, ldc);
    });
  } else {
    pool.parallel_range(N, [&](int64_t b, int64_t e, int) {
      const float* bp = trans_b ? B + b * ldb : B + b;
      gemm_serial(trans_a, trans_b, M, e - b, K, alpha, A, lda, bp, ldb, beta, C + b, ldc);
    });
  }
}

void linear_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                    const float* b, int64_t out, float* y) {
  if (b) {
    pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) std::copy(b, b + out, y + r * out);
    });
  }
  gemm(pool, false, true, rows, out, in, 1.0f, x, in, w, in, b ? 1.0f : 0.0f, y, out);
}

void linear_forward_residual(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                             const float* b, int64_t out, const float* residual, float* y) {
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      if (b)
        vec_add(residual + r * out, b, y + r * out, out);
      else if (y != residual)
        std::copy(residual + r * out, residual + (r + 1) * out, y + r * out);
    }
  });
  gemm(pool, false, true, rows, out, in, 1.0f, x, in, w, in, 1.0f, y, out);
}

void linear_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t in,
                     const float* w, int64_t out, float* dx, bool accumulate_dx, float* dw, float* db) {
  if (dx) gemm(pool, false, false, rows, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  if (dw) gemm(pool, true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) {
    // Column sums of dy, split over columns so each thread owns its slice of db.
    pool.parallel_range(out, [&](int64_t c0, int64_t c1, int) {
      for (int64_t r = 0; r < rows; ++r) vec_add(db + c0, dy + r * out + c0, db + c0, c1 - c0);
    });
  }
}

}  // namespace longctx::kernels
