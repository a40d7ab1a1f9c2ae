// LayerNorm and RMSNorm over the last dimension, forward and backward, rows split over the pool.
// x, y, dy, dx: [rows, dim]; w, b, dw, db: [dim]; mean, rstd: [rows] (saved for backward).
// Backward accumulates into dx (the residual stream's gradient) and into dw / db.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace longctx::kernels {

void layernorm_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t dim, const float* w,
                       const float* b, float eps, float* y, float* mean, float* rstd);
void layernorm_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t dim,
                        const float* w, const float* mean, const float* rstd, float* dx, float* dw,
                        float* db);
void rmsnorm_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t dim, const float* w,
                     float eps, float* y, float* rstd);
void rmsnorm_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t dim,
                      const float* w, const float* rstd, float* dx, float* dw);

}  // namespace longctx::kernels
