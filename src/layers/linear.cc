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

namespace {
float* lora_scratch(int64_t n, int slot) {
  thread_local std::vector<float> buf[2];
  if (static_cast<int64_t>(buf[slot].size()) < n) buf[slot].resize(static_cast<size_t>(n));
  return buf[slot].data();
}
}  // namespace

void lora_forward(const LayerContext& ctx, const std::vector<LoraTerm>& terms, const float* x, int64_t rows,
                  int64_t in, int64_t out, float* y) {
  ThreadPool& pool = *ctx.pool;
  for (const LoraTerm& t : terms) {
    const int64_t r = t.rank;
    if (ctx.row_invariant || !ctx.row_groups.empty()) {
      pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
        std::vector<float> u(static_cast<size_t>(r));
        for (int64_t i = r0; i < r1; ++i) {
          for (int64_t j = 0; j < r; ++j) u[j] = t.scale * kernels::vec_dot(t.a + j * in, x + i * in, in);
          for (int64_t o = 0; o < out; ++o) y[i * out + o] += kernels::vec_dot(t.b + o * r, u.data(), r);
        }
      });
      continue;
    }
    float* u = lora_scratch(rows * r, 0);
    kernels::gemm(pool, false, true, rows, r, in, 1.0f, x, in, t.a, in, 0.0f, u, r);
    kernels::gemm(pool, false, true, rows, out, r, t.scale, u, r, t.b, r, 1.0f, y, out);
  }
}

void lora_backward(const LayerContext& ctx, const std::vector<LoraTerm>& terms, const float* x, const float* dy,
                   int64_t rows, int64_t in, int64_t out, float* dx) {
  ThreadPool& pool = *ctx.pool;
  for (const LoraTerm& t : terms) {
    const int64_t r = t.rank;
    float* u = lora_scratch(rows * r, 0);  // dy B
    kernels::gemm(pool, false, false, rows, r, out, 1.0f, dy, out, t.b, r, 0.0f, u, r);
    if (dx) kernels::gemm(pool, false, false, rows, in, r, t.scale, u, r, t.a, in, 1.0f, dx, in);
    if (t.ga) kernels::gemm(pool, true, false, r, in, rows, t.scale, u, r, x, in, 1.0f, t.ga, in);
    if (t.gb) {
      float* v = lora_scratch(rows * r, 1);  // x A^T
      kernels::gemm(pool, false, true, rows, r, in, 1.0f, x, in, t.a, in, 0.0f, v, r);
      kernels::gemm(pool, true, false, out, r, rows, t.scale, dy, out, v, r, 1.0f, t.gb, r);
    }
  }
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
