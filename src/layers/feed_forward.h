// Block kind "feed_forward" (no arguments): pre-norm MLP with its layer's ff_dim,
//   x_out = x_in + Wdown . act(h),  h = norm(x_in);
//   GELU: act = gelu(Wup h); SwiGLU: act = silu(Wgate h) * (Wup h)  (the settings' mlp).
// Shapes: x [rows, model_dim]; hidden [rows, ff_dim].
#pragma once
#include <memory>

#include "layers/block.h"

namespace longctx::layers {

Expected<std::unique_ptr<Block>> make_feed_forward_block(const BlockEnv& env);

}  // namespace longctx::layers
