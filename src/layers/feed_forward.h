// Pre-norm feed-forward block: x_out = x_in + Wdown . act(h), h = norm(x_in);
// GELU: act = gelu(Wup h); SwiGLU: act = silu(Wgate h) * (Wup h).
// Shapes: x [rows, model_dim]; hidden [rows, ff_dim].
#pragma once
#include <cstdint>

#include "layers/context.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "model/params.h"

namespace longctx::layers {

template <class P>
struct FeedForwardParams {
  NormParams<P> norm;
  P w_gate = nullptr, b_gate = nullptr, w_up = nullptr, b_up = nullptr, w_down = nullptr, b_down = nullptr;
  static FeedForwardParams at(P base, const model::LayerOffsets& o) {
    auto f = [&](int64_t off) { return off < 0 ? P(nullptr) : base + off; };
    FeedForwardParams a;
    a.norm = {f(o.ffn_norm_w), f(o.ffn_norm_b)};
    a.w_gate = f(o.w_gate); a.b_gate = f(o.b_gate); a.w_up = f(o.w_up); a.b_up = f(o.b_up);
    a.w_down = f(o.w_down); a.b_down = f(o.b_down);
    return a;
  }
};

struct FeedForwardSaved {
  const float* x_in = nullptr;
  float* h = nullptr;
  float* mean = nullptr;
  float* rstd = nullptr;
  float* gate = nullptr;  // SwiGLU only: Wgate h
  float* up = nullptr;    // Wup h (pre-activation for GELU)
  float* act = nullptr;   // input of Wdown
};

// mats: the inference views of the matrices, or null (see attention_forward).
void feed_forward_forward(const LayerContext& ctx, const model::LayerConfig& lc, FeedForwardParams<const float*> p,
                          const BlockMatrices* mats, const float* x_in, int64_t rows, float* x_out, FeedForwardSaved* saved);
void feed_forward_backward(const LayerContext& ctx, const model::LayerConfig& lc, FeedForwardParams<const float*> p,
                           FeedForwardParams<float*> g, const FeedForwardSaved& s, int64_t rows, float* dx);

}  // namespace longctx::layers
