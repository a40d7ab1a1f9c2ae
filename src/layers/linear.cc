#include "layers/linear.h"

#include <vector>

#include "core/element_type.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::layers {

namespace {
bool use_q(const kernels::QMatrix* q) { return q && q->data; }
}  // namespace

void linear(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
            const kernels::QMatrix* q, const float* b, int64_t out, float* y) {
  if (!ctx.row_groups.empty() && rows > 0) {
    const auto& groups = ctx.row_groups;
    for (size_t i = 0; i < groups.size(); ++i) {
      const RowGroup& g = groups[i];
      CHECK(g.row0 + g.n <= rows);
      if (!use_q(q)) {
        kernels::linear_forward(*ctx.pool, x + g.row0 * in, g.n, in, w, b, out, y + g.row0 * out);
      } else if (g.path == kernels::QPath::kDequant && q->type != kF32) {
        // Consecutive dequantizing groups (prompt chunks) share one dequantization of W.
        std::vector<kernels::RowBlock> blocks;
        for (; i < groups.size() && groups[i].path == kernels::QPath::kDequant; ++i) {
          CHECK(groups[i].row0 + groups[i].n <= rows);
          blocks.push_back({groups[i].row0, groups[i].n});
        }
        --i;
        kernels::qlinear_forward_blocks(*ctx.pool, x, blocks, *q, b, y);
      } else {
        kernels::qlinear_forward(*ctx.pool, x + g.row0 * in, g.n, *q, b, y + g.row0 * out, g.path);
      }
    }
    return;
  }
  if (!use_q(q)) return kernels::linear_forward(*ctx.pool, x, rows, in, w, b, out, y);
  CHECK(q->cols == in && q->rows == out);
  kernels::qlinear_forward(*ctx.pool, x, rows, *q, b, y, ctx.path);
}

void linear_backward(const LayerContext& ctx, const float* x, const float* dy, int64_t rows, int64_t in,
                     const float* w, const kernels::QMatrix* q, int64_t out, float* dx, bool accumulate_dx, float* dw,
                     float* db) {
  if (!use_q(q)) return kernels::linear_backward(*ctx.pool, x, dy, rows, in, w, out, dx, accumulate_dx, dw, db);
  CHECK(q->cols == in && q->rows == out);
  CHECK_MSG(dw == nullptr, "a matrix read in its file type cannot train");
  if (dx) kernels::qlinear_backward_dx(*ctx.pool, dy, rows, *q, dx, accumulate_dx);
  if (db) kernels::linear_backward(*ctx.pool, x, dy, rows, in, w, out, nullptr, false, nullptr, db);
}

void linear_residual(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
                     const kernels::QMatrix* q, const float* b, int64_t out, const float* residual, float* y) {
  if (!use_q(q)) {
    if (ctx.row_groups.empty()) return kernels::linear_forward_residual(*ctx.pool, x, rows, in, w, b, out, residual, y);
    for (const RowGroup& g : ctx.row_groups)
      kernels::linear_forward_residual(*ctx.pool, x + g.row0 * in, g.n, in, w, b, out, residual + g.row0 * out,
                                       y + g.row0 * out);
    return;
  }
  CHECK(q->cols == in && q->rows == out);
  float* t = y;
  const int64_t m = ctx.arena->mark();
  if (y == residual) t = ctx.arena->alloc(rows * out);
  linear(ctx, x, rows, in, w, q, b, out, t);
  kernels::vec_add(t, residual, y, rows * out);
  ctx.arena->rewind(m);
}

}  // namespace longctx::layers
