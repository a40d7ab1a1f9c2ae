#include "layers/feed_forward.h"

#include <cstring>

#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::layers {

void feed_forward_forward(const LayerContext& ctx, const model::LayerConfig& lc, FeedForwardParams<const float*> p,
                          const BlockMatrices* mats, const float* x_in, int64_t rows, float* x_out, FeedForwardSaved* saved) {
  const auto& c = *ctx.config;
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t D = c.model_dim, F = lc.ff_dim;
  const bool swiglu = c.mlp == model::MlpType::kSwiglu;
  float* h = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  norm_forward(ctx, p.norm, x_in, rows, h, mean, rstd);
  float* gate = swiglu ? arena.alloc(rows * F) : nullptr;
  float* up = arena.alloc(rows * F);
  float* act = arena.alloc(rows * F);
  if (swiglu) linear(ctx, h, rows, D, p.w_gate, mats ? &mats->gate : nullptr, p.b_gate, F, gate);
  linear(ctx, h, rows, D, p.w_up, mats ? &mats->up : nullptr, p.b_up, F, up);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    if (swiglu)
      kernels::vec_swiglu(gate + r0 * F, up + r0 * F, act + r0 * F, (r1 - r0) * F);
    else
      kernels::vec_gelu(up + r0 * F, act + r0 * F, (r1 - r0) * F);
  });
  linear_residual(ctx, act, rows, F, p.w_down, mats ? &mats->down : nullptr, p.b_down, D, x_in, x_out);
  if (saved) *saved = FeedForwardSaved{x_in, h, mean, rstd, gate, up, act};
}

void feed_forward_backward(const LayerContext& ctx, const model::LayerConfig& lc, FeedForwardParams<const float*> p,
                           FeedForwardParams<float*> g, const FeedForwardSaved& s, int64_t rows, float* dx) {
  const auto& c = *ctx.config;
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t D = c.model_dim, F = lc.ff_dim;
  const bool swiglu = c.mlp == model::MlpType::kSwiglu;
  float* dact = arena.alloc(rows * F);
  kernels::linear_backward(pool, s.act, dx, rows, F, p.w_down, D, dact, false, g.w_down, g.b_down);
  float* dup = arena.alloc(rows * F);
  float* dgate = swiglu ? arena.alloc(rows * F) : nullptr;
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    const int64_t o = r0 * F, n = (r1 - r0) * F;
    if (swiglu)
      kernels::vec_swiglu_backward(s.gate + o, s.up + o, dact + o, dgate + o, dup + o, n);
    else
      kernels::vec_gelu_backward(s.up + o, dact + o, dup + o, n);
  });
  float* dh = arena.alloc(rows * D);
  kernels::linear_backward(pool, s.h, dup, rows, D, p.w_up, F, dh, false, g.w_up, g.b_up);
  if (swiglu) kernels::linear_backward(pool, s.h, dgate, rows, D, p.w_gate, F, dh, true, g.w_gate, g.b_gate);
  norm_backward(ctx, p.norm, g.norm, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace longctx::layers
