#include "layers/mlp.h"

#include "core/arena.h"
#include "layers/block.h"
#include "kernels/vec.h"
#include "layers/linear.h"

namespace longctx::layers {

int64_t mlp_forward_floats(const Mlp& m, int64_t rows) {
  return (m.swiglu() ? 3 : 2) * arena_floats(rows * m.hidden);
}
int64_t mlp_backward_floats(const Mlp& m, int64_t rows) {
  return (m.swiglu() ? 3 : 2) * arena_floats(rows * m.hidden);
}

MlpSaved mlp_forward(const LayerContext& ctx, const Mlp& m, const float* x, int64_t rows, const float* residual,
                     float* y) {
  Arena& arena = *ctx.arena;
  const int64_t D = m.in, F = m.hidden;
  MlpSaved s;
  s.gate = m.swiglu() ? arena.alloc(rows * F) : nullptr;
  s.up = arena.alloc(rows * F);
  s.act = arena.alloc(rows * F);
  if (m.swiglu()) linear(ctx, x, rows, D, m.gate.w, m.gate.q, m.gate.b, F, s.gate);
  linear(ctx, x, rows, D, m.up.w, m.up.q, m.up.b, F, s.up);
  if (m.swiglu()) lora_forward(ctx, m.gate.lora, x, rows, D, F, s.gate);
  lora_forward(ctx, m.up.lora, x, rows, D, F, s.up);
  ctx.pool->parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    const int64_t o = r0 * F, n = (r1 - r0) * F;
    if (m.type == MlpType::kSwiglu)
      kernels::vec_swiglu(s.gate + o, s.up + o, s.act + o, n);
    else if (m.type == MlpType::kGeluErf)
      kernels::vec_gelu_erf(s.up + o, s.act + o, n);
    else
      kernels::vec_gelu(s.up + o, s.act + o, n);
  });
  if (residual)
    linear_residual(ctx, s.act, rows, F, m.down.w, m.down.q, m.down.b, D, residual, y);
  else
    linear(ctx, s.act, rows, F, m.down.w, m.down.q, m.down.b, D, y);
  lora_forward(ctx, m.down.lora, s.act, rows, F, D, y);
  return s;
}

void mlp_backward(const LayerContext& ctx, const Mlp& m, const MlpSaved& s, const float* x, const float* dy,
                  int64_t rows, float* dx, bool accumulate) {
  Arena& arena = *ctx.arena;
  const int64_t D = m.in, F = m.hidden;
  float* dact = arena.alloc(rows * F);
  linear_backward(ctx, s.act, dy, rows, F, m.down.w, m.down.q, D, dact, false, m.down.dw, m.down.db);
  lora_backward(ctx, m.down.lora, s.act, dy, rows, F, D, dact);
  float* dup = arena.alloc(rows * F);
  float* dgate = m.swiglu() ? arena.alloc(rows * F) : nullptr;
  ctx.pool->parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    const int64_t o = r0 * F, n = (r1 - r0) * F;
    if (m.type == MlpType::kSwiglu)
      kernels::vec_swiglu_backward(s.gate + o, s.up + o, dact + o, dgate + o, dup + o, n);
    else if (m.type == MlpType::kGeluErf)
      kernels::vec_gelu_erf_backward(s.up + o, dact + o, dup + o, n);
    else
      kernels::vec_gelu_backward(s.up + o, dact + o, dup + o, n);
  });
  linear_backward(ctx, x, dup, rows, D, m.up.w, m.up.q, F, dx, accumulate, m.up.dw, m.up.db);
  if (m.swiglu()) linear_backward(ctx, x, dgate, rows, D, m.gate.w, m.gate.q, F, dx, true, m.gate.dw, m.gate.db);
  lora_backward(ctx, m.up.lora, x, dup, rows, D, F, dx);
  if (m.swiglu()) lora_backward(ctx, m.gate.lora, x, dgate, rows, D, F, dx);
}

}  // namespace longctx::layers
