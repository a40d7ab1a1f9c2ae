#include "layers/linear.h"

#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::layers {

namespace {
bool use_q(const kernels::QMatrix* q) { return q && q->data; }
}  // namespace

void linear(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
            const kernels::QMatrix* q, const float* b, int64_t out, float* y) {
  if (!use_q(q)) return kernels::linear_forward(*ctx.pool, x, rows, in, w, b, out, y);
  CHECK(q->cols == in && q->rows == out);
  kernels::qlinear_forward(*ctx.pool, x, rows, *q, b, y);
}

void linear_residual(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
                     const kernels::QMatrix* q, const float* b, int64_t out, const float* residual, float* y) {
  if (!use_q(q)) return kernels::linear_forward_residual(*ctx.pool, x, rows, in, w, b, out, residual, y);
  CHECK(q->cols == in && q->rows == out);
  float* t = y;
  const int64_t m = ctx.arena->mark();
  if (y == residual) t = ctx.arena->alloc(rows * out);
  kernels::qlinear_forward(*ctx.pool, x, rows, *q, b, t);
  kernels::vec_add(t, residual, y, rows * out);
  ctx.arena->rewind(m);
}

}  // namespace longctx::layers
