// The MLP of a feed-forward branch, shared by the block kinds that have one (feed_forward, and
// both branches of routed_feed_forward):
//   y = residual + Wdown . act(x),  GELU: act = gelu(Wup x); SwiGLU: act = silu(Wgate x) * (Wup x).
// Shapes: x [rows, in]; hidden [rows, hidden]; y, residual [rows, in].
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/qmatmul.h"
#include "layers/context.h"

namespace longctx::layers {

// One matrix of the MLP as a block resolved it: fp32 weights, an in-place view (or null), the
// bias (or null), the LoRA terms, and where gradients go (null: not computed).
struct MlpMatrix {
  const float* w = nullptr;
  const kernels::QMatrix* q = nullptr;
  const float* b = nullptr;
  std::vector<LoraTerm> lora;
  float* dw = nullptr;
  float* db = nullptr;
};

struct Mlp {
  int64_t in = 0, hidden = 0;
  MlpType type = MlpType::kSwiglu;
  MlpMatrix gate, up, down;  // gate: SwiGLU only
  bool swiglu() const { return type == MlpType::kSwiglu; }
};

// What backward needs (arena memory of the forward).
struct MlpSaved {
  float* gate = nullptr;  // SwiGLU: Wgate x
  float* up = nullptr;    // Wup x (GELU: before the activation)
  float* act = nullptr;   // input of Wdown
};

// Arena floats of mlp_forward / mlp_backward over `rows` rows.
int64_t mlp_forward_floats(const Mlp& m, int64_t rows);
int64_t mlp_backward_floats(const Mlp& m, int64_t rows);

// y = residual + Wdown act(x) (+ bias); y may alias residual, not x. residual null: y = the
// branch alone.
MlpSaved mlp_forward(const LayerContext& ctx, const Mlp& m, const float* x, int64_t rows, const float* residual,
                     float* y);
// Backward from dy = dL/dy: dx (+)= dL/dx (accumulate), the matrices' gradients accumulate.
void mlp_backward(const LayerContext& ctx, const Mlp& m, const MlpSaved& s, const float* x, const float* dy,
                  int64_t rows, float* dx, bool accumulate);

}  // namespace longctx::layers
