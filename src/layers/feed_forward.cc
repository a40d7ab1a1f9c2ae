#include "layers/feed_forward.h"

#include <string>

#include "kernels/vec.h"
#include "layers/norm.h"

namespace longctx::layers {
namespace {

class FeedForwardBlock final : public Block {
 public:
  FeedForwardBlock(const BlockEnv& env, bool post_norm)
      : D_(env.settings.model_dim),
        F_(env.layer.ff_dim),
        type_(env.settings.mlp),
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
    const bool swiglu = type_ == MlpType::kSwiglu;
    if (swiglu) {
      gate_ = matrix("ffn_gate.weight", F_, D_, Init::kNormal);
      if (s.bias) b_gate_ = vector("ffn_gate.bias", F_, Init::kZeros);
    }
    up_ = matrix("ffn_up.weight", F_, D_, Init::kNormal);
    if (s.bias) b_up_ = vector("ffn_up.bias", F_, Init::kZeros);
    down_ = declare({"ffn_down.weight", {D_, F_}, kF32, true, true, Init::kResidualOut, true, true});
    if (s.bias) b_down_ = declare({"ffn_down.bias", {D_}, kF32, true, false, Init::kZeros, false, true});
    if (swiglu) declare_lora(s, gate_, "gate");
    declare_lora(s, up_, "up");
    declare_lora(s, down_, "down");
  }

  int64_t forward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return arena_floats(rows * D_) + 2 * arena_floats(rows) + mlp_forward_floats(mlp_shape(), rows);
  }
  int64_t backward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return mlp_backward_floats(mlp_shape(), rows) + (post_norm_ ? 2 : 1) * arena_floats(rows * D_);
  }
  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;

 private:
  struct Saved {
    const float* x_in = nullptr;
    float* h = nullptr;  // pre-norm: the normed input; post-norm: input + branch, before the norm
    float* mean = nullptr;
    float* rstd = nullptr;
    MlpSaved mlp;
  };
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }
  Mlp mlp_shape() const {
    Mlp m;
    m.in = D_;
    m.hidden = F_;
    m.type = type_;
    return m;
  }
  Mlp mlp(const Weights& w) const {
    Mlp m = mlp_shape();
    m.gate = mlp_matrix(w, gate_, b_gate_);
    m.up = mlp_matrix(w, up_, b_up_);
    m.down = mlp_matrix(w, down_, b_down_);
    return m;
  }

  int64_t D_, F_;
  MlpType type_;
  bool post_norm_;
  int norm_w_ = -1, norm_b_ = -1, gate_ = -1, b_gate_ = -1, up_ = -1, b_up_ = -1, down_ = -1, b_down_ = -1;
  Saved saved_;
};

void FeedForwardBlock::forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                               float* x_out) {
  Arena& arena = *ctx.arena;
  const int64_t rows = pass.rows(), D = D_;
  float* h = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  const float* in = x_in;  // what the branch reads
  if (!post_norm_) {
    norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
    in = h;
  }
  float* sum = post_norm_ ? h : x_out;
  const MlpSaved ms = mlp_forward(ctx, mlp(w), in, rows, x_in, sum);
  if (post_norm_) norm_forward(ctx, norm(w), h, rows, x_out, mean, rstd);
  if (pass.save) saved_ = Saved{x_in, h, mean, rstd, ms};
}

void FeedForwardBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t rows = pass.rows(), D = D_;
  // Post-norm: dL/d(input + branch) first; it is both the residual's gradient and the branch's.
  const float* dy =
      post_norm_ ? post_norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.h, dx, rows, s.mean, s.rstd) : dx;
  const float* in = post_norm_ ? s.x_in : s.h;
  float* dh = arena.alloc(rows * D);
  mlp_backward(ctx, mlp(w), s.mlp, in, dy, rows, dh, false);
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
