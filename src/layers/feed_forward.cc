#include "layers/feed_forward.h"

#include <algorithm>
#include <string>

#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/linear.h"
#include "layers/norm.h"

namespace longctx::layers {
namespace {

class FeedForwardBlock final : public Block {
 public:
  FeedForwardBlock(const BlockEnv& env, bool post_norm)
      : D_(env.settings.model_dim),
        F_(env.layer.ff_dim),
        swiglu_(env.settings.mlp == MlpType::kSwiglu),
        erf_(env.settings.mlp == MlpType::kGeluErf),
        post_norm_(post_norm) {
    const Settings& s = env.settings;
    auto matrix = [&](const char* name, int64_t rows, int64_t cols, Init init) {
      return declare({name, {rows, cols}, kF32, true, true, init, true});
    };
    auto vector = [&](const char* name, int64_t n, Init init) { return declare({name, {n}, kF32, true, false, init}); };
    // Pre-norm: the branch reads the normed input. Post-norm (BERT): the branch reads the input
    // and the norm applies to input + branch.
    const std::string norm_name = post_norm ? "layer_output_norm" : "ffn_norm";
    norm_w_ = vector((norm_name + ".weight").c_str(), D_, Init::kOnes);
    if (s.norm == NormType::kLayerNorm && s.bias) norm_b_ = vector((norm_name + ".bias").c_str(), D_, Init::kZeros);
    if (swiglu_) {
      gate_ = matrix("ffn_gate.weight", F_, D_, Init::kNormal);
      if (s.bias) b_gate_ = vector("ffn_gate.bias", F_, Init::kZeros);
    }
    up_ = matrix("ffn_up.weight", F_, D_, Init::kNormal);
    if (s.bias) b_up_ = vector("ffn_up.bias", F_, Init::kZeros);
    down_ = declare({"ffn_down.weight", {D_, F_}, kF32, true, true, Init::kResidualOut, true, true});
    if (s.bias) b_down_ = declare({"ffn_down.bias", {D_}, kF32, true, false, Init::kZeros, false, true});
    if (swiglu_) declare_lora(s, gate_, "gate");
    declare_lora(s, up_, "up");
    declare_lora(s, down_, "down");
  }

  int64_t forward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return arena_floats(rows * D_) + 2 * arena_floats(rows) + (swiglu_ ? 3 : 2) * arena_floats(rows * F_);
  }
  int64_t backward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return (swiglu_ ? 3 : 2) * arena_floats(rows * F_) + (post_norm_ ? 2 : 1) * arena_floats(rows * D_);
  }
  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;

 private:
  struct Saved {
    const float* x_in = nullptr;
    float* h = nullptr;  // pre-norm: the normed input; post-norm: input + branch, before the norm
    float* mean = nullptr;
    float* rstd = nullptr;
    float* gate = nullptr;  // SwiGLU only: Wgate h
    float* up = nullptr;    // Wup h (pre-activation for GELU)
    float* act = nullptr;   // input of Wdown
  };
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }

  int64_t D_, F_;
  bool swiglu_, erf_, post_norm_;
  int norm_w_ = -1, norm_b_ = -1, gate_ = -1, b_gate_ = -1, up_ = -1, b_up_ = -1, down_ = -1, b_down_ = -1;
  Saved saved_;
};

void FeedForwardBlock::forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                               float* x_out) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t rows = pass.rows(), D = D_, F = F_;
  float* h = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  const float* in = x_in;  // what the branch reads
  if (!post_norm_) {
    norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
    in = h;
  }
  float* gate = swiglu_ ? arena.alloc(rows * F) : nullptr;
  float* up = arena.alloc(rows * F);
  float* act = arena.alloc(rows * F);
  if (swiglu_) linear(ctx, in, rows, D, param(w, gate_), view(w, gate_), param(w, b_gate_), F, gate);
  linear(ctx, in, rows, D, param(w, up_), view(w, up_), param(w, b_up_), F, up);
  if (swiglu_) lora_forward(ctx, lora(w, gate_), in, rows, D, F, gate);
  lora_forward(ctx, lora(w, up_), in, rows, D, F, up);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    if (swiglu_)
      kernels::vec_swiglu(gate + r0 * F, up + r0 * F, act + r0 * F, (r1 - r0) * F);
    else if (erf_)
      kernels::vec_gelu_erf(up + r0 * F, act + r0 * F, (r1 - r0) * F);
    else
      kernels::vec_gelu(up + r0 * F, act + r0 * F, (r1 - r0) * F);
  });
  float* sum = post_norm_ ? h : x_out;
  linear_residual(ctx, act, rows, F, param(w, down_), view(w, down_), param(w, b_down_), D, x_in, sum);
  lora_forward(ctx, lora(w, down_), act, rows, F, D, sum);
  if (post_norm_) norm_forward(ctx, norm(w), h, rows, x_out, mean, rstd);
  if (pass.save) saved_ = Saved{x_in, h, mean, rstd, gate, up, act};
}

void FeedForwardBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t rows = pass.rows(), D = D_, F = F_;
  // Post-norm: dL/d(input + branch) first; it is both the residual's gradient and the branch's.
  const float* dy =
      post_norm_ ? post_norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.h, dx, rows, s.mean, s.rstd) : dx;
  float* dact = arena.alloc(rows * F);
  linear_backward(ctx, s.act, dy, rows, F, param(w, down_), view(w, down_), D, dact, false, grad(w, down_), grad(w, b_down_));
  lora_backward(ctx, lora(w, down_), s.act, dy, rows, F, D, dact);
  float* dup = arena.alloc(rows * F);
  float* dgate = swiglu_ ? arena.alloc(rows * F) : nullptr;
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    const int64_t o = r0 * F, n = (r1 - r0) * F;
    if (swiglu_)
      kernels::vec_swiglu_backward(s.gate + o, s.up + o, dact + o, dgate + o, dup + o, n);
    else if (erf_)
      kernels::vec_gelu_erf_backward(s.up + o, dact + o, dup + o, n);
    else
      kernels::vec_gelu_backward(s.up + o, dact + o, dup + o, n);
  });
  const float* in = post_norm_ ? s.x_in : s.h;
  float* dh = arena.alloc(rows * D);
  linear_backward(ctx, in, dup, rows, D, param(w, up_), view(w, up_), F, dh, false, grad(w, up_), grad(w, b_up_));
  if (swiglu_)
    linear_backward(ctx, in, dgate, rows, D, param(w, gate_), view(w, gate_), F, dh, true, grad(w, gate_), grad(w, b_gate_));
  lora_backward(ctx, lora(w, up_), in, dup, rows, D, F, dh);
  if (swiglu_) lora_backward(ctx, lora(w, gate_), in, dgate, rows, D, F, dh);
  if (post_norm_)
    kernels::vec_add(dx, dh, dx, rows * D);
  else
    norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace

Expected<std::unique_ptr<Block>> make_feed_forward_block(const BlockEnv& env) {
  if (!env.args.empty() && env.args != "post_norm")
    return Status::Error("feed_forward takes no arguments or 'post_norm'");
  return std::unique_ptr<Block>(std::make_unique<FeedForwardBlock>(env, env.args == "post_norm"));
}

}  // namespace longctx::layers
