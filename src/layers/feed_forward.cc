#include "layers/feed_forward.h"

#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/linear.h"
#include "layers/norm.h"

namespace longctx::layers {
namespace {

class FeedForwardBlock final : public Block {
 public:
  explicit FeedForwardBlock(const BlockEnv& env)
      : D_(env.settings.model_dim), F_(env.layer.ff_dim), swiglu_(env.settings.mlp == MlpType::kSwiglu) {
    const Settings& s = env.settings;
    auto matrix = [&](const char* name, int64_t rows, int64_t cols, Init init) {
      return declare({name, {rows, cols}, kF32, true, true, init, true});
    };
    auto vector = [&](const char* name, int64_t n, Init init) { return declare({name, {n}, kF32, true, false, init}); };
    norm_w_ = vector("ffn_norm.weight", D_, Init::kOnes);
    if (s.norm == NormType::kLayerNorm && s.bias) norm_b_ = vector("ffn_norm.bias", D_, Init::kZeros);
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
    return (swiglu_ ? 3 : 2) * arena_floats(rows * F_) + arena_floats(rows * D_);
  }
  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;

 private:
  struct Saved {
    const float* x_in = nullptr;
    float* h = nullptr;
    float* mean = nullptr;
    float* rstd = nullptr;
    float* gate = nullptr;  // SwiGLU only: Wgate h
    float* up = nullptr;    // Wup h (pre-activation for GELU)
    float* act = nullptr;   // input of Wdown
  };
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }

  int64_t D_, F_;
  bool swiglu_;
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
  norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
  float* gate = swiglu_ ? arena.alloc(rows * F) : nullptr;
  float* up = arena.alloc(rows * F);
  float* act = arena.alloc(rows * F);
  if (swiglu_) linear(ctx, h, rows, D, param(w, gate_), view(w, gate_), param(w, b_gate_), F, gate);
  linear(ctx, h, rows, D, param(w, up_), view(w, up_), param(w, b_up_), F, up);
  if (swiglu_) lora_forward(ctx, lora(w, gate_), h, rows, D, F, gate);
  lora_forward(ctx, lora(w, up_), h, rows, D, F, up);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    if (swiglu_)
      kernels::vec_swiglu(gate + r0 * F, up + r0 * F, act + r0 * F, (r1 - r0) * F);
    else
      kernels::vec_gelu(up + r0 * F, act + r0 * F, (r1 - r0) * F);
  });
  linear_residual(ctx, act, rows, F, param(w, down_), view(w, down_), param(w, b_down_), D, x_in, x_out);
  lora_forward(ctx, lora(w, down_), act, rows, F, D, x_out);
  if (pass.save) saved_ = Saved{x_in, h, mean, rstd, gate, up, act};
}

void FeedForwardBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t rows = pass.rows(), D = D_, F = F_;
  float* dact = arena.alloc(rows * F);
  linear_backward(ctx, s.act, dx, rows, F, param(w, down_), view(w, down_), D, dact, false, grad(w, down_), grad(w, b_down_));
  lora_backward(ctx, lora(w, down_), s.act, dx, rows, F, D, dact);
  float* dup = arena.alloc(rows * F);
  float* dgate = swiglu_ ? arena.alloc(rows * F) : nullptr;
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    const int64_t o = r0 * F, n = (r1 - r0) * F;
    if (swiglu_)
      kernels::vec_swiglu_backward(s.gate + o, s.up + o, dact + o, dgate + o, dup + o, n);
    else
      kernels::vec_gelu_backward(s.up + o, dact + o, dup + o, n);
  });
  float* dh = arena.alloc(rows * D);
  linear_backward(ctx, s.h, dup, rows, D, param(w, up_), view(w, up_), F, dh, false, grad(w, up_), grad(w, b_up_));
  if (swiglu_)
    linear_backward(ctx, s.h, dgate, rows, D, param(w, gate_), view(w, gate_), F, dh, true, grad(w, gate_), grad(w, b_gate_));
  lora_backward(ctx, lora(w, up_), s.h, dup, rows, D, F, dh);
  if (swiglu_) lora_backward(ctx, lora(w, gate_), s.h, dgate, rows, D, F, dh);
  norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace

Expected<std::unique_ptr<Block>> make_feed_forward_block(const BlockEnv& env) {
  if (!env.args.empty()) return Status::Error("feed_forward takes no arguments");
  return std::unique_ptr<Block>(std::make_unique<FeedForwardBlock>(env));
}

}  // namespace longctx::layers
