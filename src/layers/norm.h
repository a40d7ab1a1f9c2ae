// LayerNorm or RMSNorm, chosen by the model-wide settings. x, y: [rows, dim]; mean, rstd: [rows].
#pragma once
#include <algorithm>

#include "kernels/norm.h"
#include "layers/context.h"

namespace longctx::layers {

template <class P>
struct NormParams {
  P w = nullptr;
  P b = nullptr;  // LayerNorm with biases only
};

inline void norm_forward(const LayerContext& ctx, NormParams<const float*> p, const float* x, int64_t rows,
                         float* y, float* mean, float* rstd) {
  const Settings& c = *ctx.settings;
  if (c.norm == NormType::kLayerNorm)
    kernels::layernorm_forward(*ctx.pool, x, rows, c.model_dim, p.w, p.b, c.norm_eps, y, mean, rstd);
  else
    kernels::rmsnorm_forward(*ctx.pool, x, rows, c.model_dim, p.w, c.norm_eps, y, rstd);
}

// Accumulates into dx, g.w and g.b.
inline void norm_backward(const LayerContext& ctx, NormParams<const float*> p, NormParams<float*> g,
                          const float* x, const float* dy, int64_t rows, const float* mean,
                          const float* rstd, float* dx) {
  const Settings& c = *ctx.settings;
  if (c.norm == NormType::kLayerNorm)
    kernels::layernorm_backward(*ctx.pool, x, dy, rows, c.model_dim, p.w, mean, rstd, dx, g.w, g.b);
  else
    kernels::rmsnorm_backward(*ctx.pool, x, dy, rows, c.model_dim, p.w, rstd, dx, g.w);
}

// A post-norm block's start of backward: y = norm(sum) with sum = input + branch. dx holds
// dL/dy on entry and dL/dsum on exit (the residual's gradient); returns dL/dsum again in an
// arena copy, the gradient the branch's backward starts from. Accumulates g.
inline const float* post_norm_backward(const LayerContext& ctx, NormParams<const float*> p, NormParams<float*> g,
                                       const float* sum, float* dx, int64_t rows, const float* mean,
                                       const float* rstd) {
  const int64_t n = rows * ctx.settings->model_dim;
  float* dsum = ctx.arena->alloc_zero(n);
  norm_backward(ctx, p, g, sum, dx, rows, mean, rstd, dsum);
  std::copy(dsum, dsum + n, dx);
  return dsum;
}

}  // namespace longctx::layers
