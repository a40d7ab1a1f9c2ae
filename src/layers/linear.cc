#include "layers/linear.h"

#include <vector>

#include "core/element_type.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::layers {

namespace {
bool use_q(const kernels::QMatrix* q) { return q && q->data; }

void fp32_forward(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w, const float* b,
                  int64_t out, float* y, const uint16_t* w_packed) {
  if (ctx.bf16)
    kernels::linear_forward_bf16(*ctx.pool, x, rows, in, w, b, out, y, w_packed);
  else
    kernels::linear_forward(*ctx.pool, x, rows, in, w, b, out, y);
}

// Under bf16, an F32 matrix read in place is fp32 weights that never change: the bf16 product
// takes it, packed once (ctx.bf16_weights). Returns the packed copy, or null.
const uint16_t* f32_view_as_weights(const LayerContext& ctx, const float*& w, const kernels::QMatrix*& q,
                                           int64_t in, int64_t out) {
  if (!(ctx.bf16 && use_q(q) && q->type == kF32 && q->row_bytes == in * 4)) return nullptr;
  w = static_cast<const float*>(q->data);
  q = nullptr;
  return ctx.bf16_weights ? ctx.bf16_weights->get(*ctx.pool, w, out, in) : nullptr;
}
}  // namespace

void linear(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
            const kernels::QMatrix* q, const float* b, int64_t out, float* y) {
  const uint16_t* packed = f32_view_as_weights(ctx, w, q, in, out);
  if (!ctx.row_groups.empty() && rows > 0) {
    const auto& groups = ctx.row_groups;
    for (size_t i = 0; i < groups.size(); ++i) {
      const RowGroup& g = groups[i];
      CHECK(g.row0 + g.n <= rows);
      if (!use_q(q)) {
        fp32_forward(ctx, x + g.row0 * in, g.n, in, w, b, out, y + g.row0 * out, packed);
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
  if (!use_q(q)) return fp32_forward(ctx, x, rows, in, w, b, out, y, packed);
  CHECK(q->cols == in && q->rows == out);
  kernels::qlinear_forward(*ctx.pool, x, rows, *q, b, y, ctx.path);
}

void linear_backward(const LayerContext& ctx, const float* x, const float* dy, int64_t rows, int64_t in,
                     const float* w, const kernels::QMatrix* q, int64_t out, float* dx, bool accumulate_dx, float* dw,
                     float* db) {
  if (!use_q(q) && ctx.bf16)
    return kernels::linear_backward_bf16(*ctx.pool, x, dy, rows, in, w, out, dx, accumulate_dx, dw, db);
  if (!use_q(q)) return kernels::linear_backward(*ctx.pool, x, dy, rows, in, w, out, dx, accumulate_dx, dw, db);
  CHECK(q->cols == in && q->rows == out);
  CHECK_MSG(dw == nullptr, "a matrix read in its file type cannot train");
  if (dx) kernels::qlinear_backward_dx(*ctx.pool, dy, rows, *q, dx, accumulate_dx);
  if (db) kernels::linear_backward(*ctx.pool, x, dy, rows, in, w, out, nullptr, false, nullptr, db);
}

namespace {
float* lora_scratch(int64_t n, int slot) {
  thread_local std::vector<float> buf[4];
  if (static_cast<int64_t>(buf[slot].size()) < n) buf[slot].resize(static_cast<size_t>(n));
  return buf[slot].data();
}

// LoRA dropout: element i of the branch's input is kept with probability 1 - p (and scaled by
// 1 / (1 - p)), decided by a hash of (pass seed, matrix, i): forward and backward draw the same
// mask without storing it, and it does not depend on the thread count.
bool dropout_on(const LayerContext& ctx, const LoraTerm& t) { return ctx.dropout_seed != 0 && t.dropout > 0; }
float keep_scale(uint64_t seed, uint64_t id, int64_t i, float p) {
  uint64_t z = seed ^ (id * 0x9E3779B97F4A7C15ULL) ^ (static_cast<uint64_t>(i) * 0xD1B54A32D192ED03ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  z ^= z >> 31;
  const float u = static_cast<float>(z >> 40) * 0x1.0p-24f;
  return u < p ? 0.0f : 1.0f / (1.0f - p);
}
// x with the term's dropout applied, in scratch slot `slot`.
const float* dropped(const LayerContext& ctx, const LoraTerm& t, const float* x, int64_t n, int slot) {
  float* d = lora_scratch(n, slot);
  ctx.pool->parallel_range(n, [&](int64_t i0, int64_t i1, int) {
    for (int64_t i = i0; i < i1; ++i) d[i] = x[i] * keep_scale(ctx.dropout_seed, t.id, i, t.dropout);
  });
  return d;
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
    const float* xd = dropout_on(ctx, t) ? dropped(ctx, t, x, rows * in, 2) : x;
    float* u = lora_scratch(rows * r, 0);
    kernels::gemm(pool, false, true, rows, r, in, 1.0f, xd, in, t.a, in, 0.0f, u, r);
    kernels::gemm(pool, false, true, rows, out, r, t.scale, u, r, t.b, r, 1.0f, y, out);
  }
}

void lora_backward(const LayerContext& ctx, const std::vector<LoraTerm>& terms, const float* x, const float* dy,
                   int64_t rows, int64_t in, int64_t out, float* dx) {
  ThreadPool& pool = *ctx.pool;
  for (const LoraTerm& t : terms) {
    const int64_t r = t.rank;
    const bool drop = dropout_on(ctx, t);
    const float* xd = drop ? dropped(ctx, t, x, rows * in, 2) : x;
    float* u = lora_scratch(rows * r, 0);  // dy B
    kernels::gemm(pool, false, false, rows, r, out, 1.0f, dy, out, t.b, r, 0.0f, u, r);
    if (dx && !drop) kernels::gemm(pool, false, false, rows, in, r, t.scale, u, r, t.a, in, 1.0f, dx, in);
    if (dx && drop) {  // through the mask
      float* g = lora_scratch(rows * in, 3);
      kernels::gemm(pool, false, false, rows, in, r, t.scale, u, r, t.a, in, 0.0f, g, in);
      pool.parallel_range(rows * in, [&](int64_t i0, int64_t i1, int) {
        for (int64_t i = i0; i < i1; ++i) dx[i] += g[i] * keep_scale(ctx.dropout_seed, t.id, i, t.dropout);
      });
    }
    if (t.ga) kernels::gemm(pool, true, false, r, in, rows, t.scale, u, r, xd, in, 1.0f, t.ga, in);
    if (t.gb) {
      float* v = lora_scratch(rows * r, 1);  // x A^T
      kernels::gemm(pool, false, true, rows, r, in, 1.0f, xd, in, t.a, in, 0.0f, v, r);
      kernels::gemm(pool, true, false, out, r, rows, t.scale, dy, out, v, r, 1.0f, t.gb, r);
    }
  }
}

void linear_residual(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
                     const kernels::QMatrix* q, const float* b, int64_t out, const float* residual, float* y) {
  const uint16_t* packed = f32_view_as_weights(ctx, w, q, in, out);
  if (!use_q(q)) {
    auto product = [&](const float* xs, int64_t n, const float* res, float* ys) {
      if (ctx.bf16)
        kernels::linear_forward_residual_bf16(*ctx.pool, xs, n, in, w, b, out, res, ys, packed);
      else
        kernels::linear_forward_residual(*ctx.pool, xs, n, in, w, b, out, res, ys);
    };
    if (ctx.row_groups.empty()) return product(x, rows, residual, y);
    for (const RowGroup& g : ctx.row_groups) product(x + g.row0 * in, g.n, residual + g.row0 * out, y + g.row0 * out);
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
