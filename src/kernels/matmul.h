// fp32 matrix products through OpenBLAS, split over the thread pool (OpenBLAS itself runs one
// thread per call, so the process never has more busy threads than `-t`).
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace longctx::kernels {

// C[M, N] = alpha * op(A) * op(B) + beta * C, all row-major. op(A) is [M, K]: A is [M, K]
// (lda >= K) or, with trans_a, [K, M] (lda >= M). Likewise op(B) is [K, N].
// The larger of M and N is split into one contiguous block per thread: deterministic for a
// given thread count.
void gemm(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product on the calling thread only (for use inside a pool task).
void gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                 const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
                 int64_t ldc);

// Linear layer, PyTorch convention W [out, in]:
//   forward  y[rows, out] = x[rows, in] W^T (+ b)
//   backward dx = dy W (accumulate if accumulate_dx), dW += dy^T x, db += column sums of dy.
void linear_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                    const float* b, int64_t out, float* y);
// Output projection of a residual branch: y[rows, out] = residual + x[rows, in] W^T (+ b).
// y may not alias x; it may alias residual.
void linear_forward_residual(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                             const float* b, int64_t out, const float* residual, float* y);
void linear_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t in,
                     const float* w, int64_t out, float* dx, bool accumulate_dx, float* dw, float* db);

}  // namespace longctx::kernels
