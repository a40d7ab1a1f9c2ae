#include "layers/routed_feed_forward.h"

#include <algorithm>
#include <string>

#include "layers/norm.h"
#include "layers/routed.h"
#include "layers/router.h"

namespace longctx::layers {
namespace {

struct RoutedFfArgs {
  int64_t light = -1, heavy = -1;  // -1: default
  double route = 1.0 / 16;
  bool topk = false;  // the encoder form (rule=topk)
};

class RoutedFeedForwardBlock final : public Block {
 public:
  RoutedFeedForwardBlock(const BlockEnv& env, const RoutedFfArgs& a)
      : D_(env.settings.model_dim),
        FL_(a.light),
        FH_(a.heavy),
        fraction_(a.route),
        topk_(a.topk),
        type_(env.settings.mlp) {
    const Settings& s = env.settings;
    norm_w_ = declare({"ffn_norm.weight", {D_}, kF32, true, false, Init::kOnes});
    if (s.norm == NormType::kLayerNorm && s.bias) norm_b_ = declare({"ffn_norm.bias", {D_}, kF32, true, false, Init::kZeros});
    heavy_ = declare_mlp(s, "ffn_", FH_, true);
    if (FL_ > 0) light_ = declare_mlp(s, "ffn_light_", FL_, false);
    if (fraction_ < 1) router_u_ = declare({"ffn_router.weight", {D_}, kF32, true, false, Init::kNormal});
    if (fraction_ < 1 && !topk_) {
      TensorDecl t{"ffn_router.threshold", {1}, kF32, true, false, Init::kValue};
      t.init_value = initial_threshold(fraction_);
      t.statistic = true;
      router_tau_ = declare(t);
    }
  }

  int64_t forward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    // Sized for every row routed (the threshold rule has no capacity limit).
    return arena_floats(rows * D_) + 2 * arena_floats(rows) + (FL_ > 0 ? mlp_forward_floats(shape(FL_), rows) : 0) +
           2 * arena_floats(rows * D_) + mlp_forward_floats(shape(FH_), rows);
  }
  int64_t backward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return arena_floats(rows * D_) + (FL_ > 0 ? mlp_backward_floats(shape(FL_), rows) : 0) + 2 * arena_floats(rows * D_) +
           mlp_backward_floats(shape(FH_), rows);
  }
  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;
  std::vector<RouteCount> take_route_counts() override {
    std::vector<RouteCount> out{std::move(counted_)};
    out[0].router = "ffn";
    counted_ = {};
    return out;
  }

 private:
  struct MlpIds {
    int gate = -1, b_gate = -1, up = -1, b_up = -1, down = -1, b_down = -1;
  };
  MlpIds declare_mlp(const Settings& s, const std::string& prefix, int64_t F, bool lora) {
    const bool swiglu = s.mlp == MlpType::kSwiglu;
    MlpIds m;
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, Init init, bool out) {
      return declare({prefix + name, {rows, cols}, kF32, true, true, init, true, out});
    };
    auto vector = [&](const std::string& name, int64_t n, bool out) {
      return declare({prefix + name, {n}, kF32, true, false, Init::kZeros, false, out});
    };
    if (swiglu) m.gate = matrix("gate.weight", F, D_, Init::kNormal, false);
    if (swiglu && s.bias) m.b_gate = vector("gate.bias", F, false);
    m.up = matrix("up.weight", F, D_, Init::kNormal, false);
    if (s.bias) m.b_up = vector("up.bias", F, false);
    m.down = matrix("down.weight", D_, F, Init::kResidualOut, true);
    if (s.bias) m.b_down = vector("down.bias", D_, true);
    if (lora) {  // LoRA targets name the dense block's matrices: the heavy branch's
      if (swiglu) declare_lora(s, m.gate, "gate");
      declare_lora(s, m.up, "up");
      declare_lora(s, m.down, "down");
    }
    return m;
  }
  Mlp shape(int64_t F) const {
    Mlp m;
    m.in = D_;
    m.hidden = F;
    m.type = type_;
    return m;
  }
  Mlp mlp(const Weights& w, const MlpIds& ids, int64_t F) const {
    Mlp m = shape(F);
    m.gate = mlp_matrix(w, ids.gate, ids.b_gate);
    m.up = mlp_matrix(w, ids.up, ids.b_up);
    m.down = mlp_matrix(w, ids.down, ids.b_down);
    return m;
  }
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }

  struct Saved {
    const float* x_in = nullptr;
    float* h = nullptr;
    float* mean = nullptr;
    float* rstd = nullptr;
    MlpSaved light;
    float* hh = nullptr;  // [routed, D] the routed rows of h
    float* y = nullptr;   // [routed, D] the heavy branch's output before the gate
    MlpSaved heavy;
  };

  int64_t D_, FL_, FH_;
  double fraction_;
  bool topk_;
  MlpType type_;
  int norm_w_ = -1, norm_b_ = -1, router_u_ = -1, router_tau_ = -1;
  MlpIds heavy_, light_;
  Routing routing_;
  Saved saved_;
  RouteCount counted_;
};

void RoutedFeedForwardBlock::forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                                     float* x_out) {
  Arena& arena = *ctx.arena;
  const int64_t rows = pass.rows(), D = D_;
  float* h = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
  MlpSaved light;
  if (FL_ > 0)
    light = mlp_forward(ctx, mlp(w, light_, FL_), h, rows, x_in, x_out);
  else
    std::copy(x_in, x_in + rows * D, x_out);
  if (topk_ && router_u_ >= 0)
    route_topk(*ctx.pool, h, pass.batch, pass.seq_len, D, param(w, router_u_), fraction_, &routing_);
  else if (router_u_ >= 0)
    route(*ctx.pool, h, rows, D, param(w, router_u_), *param(w, router_tau_), pass.save ? fraction_ : 0.0,
          &routing_);
  else
    route_all(rows, &routing_);
  counted_.routed += static_cast<int64_t>(routing_.rows.size());
  counted_.considered += rows;
  if (ctx.route_trace) append_positions(pass, routing_.rows, &counted_.positions);
  const int64_t m = static_cast<int64_t>(routing_.rows.size());
  float* hh = arena.alloc(m * D);
  float* y = arena.alloc(m * D);
  gather_rows(*ctx.pool, h, D, routing_.rows, hh);
  const GatheredContext gctx(ctx, routing_.rows);
  const MlpSaved heavy = m > 0 ? mlp_forward(gctx.ctx, mlp(w, heavy_, FH_), hh, m, nullptr, y) : MlpSaved{};
  scatter_add_rows(*ctx.pool, y, D, routing_.rows, routing_.gate.data(), x_out);
  if (pass.save) saved_ = Saved{x_in, h, mean, rstd, light, hh, y, heavy};
}

void RoutedFeedForwardBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t rows = pass.rows(), D = D_, m = static_cast<int64_t>(routing_.rows.size());
  float* dh = arena.alloc_zero(rows * D);
  if (FL_ > 0) mlp_backward(ctx, mlp(w, light_, FL_), s.light, s.h, dx, rows, dh, false);
  // Heavy: y_j scaled by gate_j and added to row r_j: dy_j = gate_j dx[r_j], dgate_j = dx[r_j] . y_j.
  float* dy = arena.alloc(m * D);
  float* dhh = arena.alloc(m * D);
  std::vector<float> dgate(static_cast<size_t>(m));
  gather_rows_backward(*ctx.pool, dx, D, routing_.rows, routing_.gate.data(), s.y, dy, dgate.data());
  if (m > 0) {
    mlp_backward(ctx, mlp(w, heavy_, FH_), s.heavy, s.hh, dy, m, dhh, false);
    scatter_add_rows(*ctx.pool, dhh, D, routing_.rows, nullptr, dh);
  }
  if (router_u_ >= 0)
    route_backward(routing_, s.h, D, param(w, router_u_), topk_ ? 0.0f : *param(w, router_tau_), dgate.data(), dh,
                   grad(w, router_u_), grad(w, router_tau_));
  norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace

Expected<double> parse_fraction(const std::string& s) {
  double v = 0;
  const size_t slash = s.find('/');
  try {
    size_t used = 0;
    if (slash == std::string::npos) {
      v = std::stod(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
    } else {
      const std::string a = s.substr(0, slash), b = s.substr(slash + 1);
      size_t ua = 0, ub = 0;
      const double num = std::stod(a, &ua), den = std::stod(b, &ub);
      if (ua != a.size() || ub != b.size() || den == 0) throw std::invalid_argument(s);
      v = num / den;
    }
  } catch (const std::exception&) {
    return Status::Error("'" + s + "' is not a fraction (write 1/16 or 0.0625)");
  }
  if (!(v > 0 && v <= 1)) return Status::Error("fraction '" + s + "' is not in (0, 1]");
  return v;
}

Expected<bool> parse_rule(const std::string& s) {
  if (s != "threshold" && s != "topk") return Status::Error("rule '" + s + "' is neither threshold (causal) nor topk (encoders)");
  return s == "topk";
}

Expected<std::unique_ptr<Block>> make_routed_feed_forward_block(const BlockEnv& env) {
  RoutedFfArgs a;
  auto kv = parse_block_args(env.args, {"light", "heavy", "route", "rule"});
  if (!kv.ok()) return kv.status();
  for (const auto& [key, value] : *kv) {
    if (key == "rule") {
      auto topk = parse_rule(value);
      if (!topk.ok()) return topk.status();
      a.topk = *topk;
      continue;
    }
    if (key == "route") {
      auto f = parse_fraction(value);
      if (!f.ok()) return f.status().Wrap("route");
      a.route = *f;
      continue;
    }
    auto n = parse_size_arg(key, value, key == "light" ? 0 : 1);
    if (!n.ok()) return n.status();
    (key == "light" ? a.light : a.heavy) = *n;
  }
  if (a.topk && env.settings.output_head)
    return Status::Error("rule=topk routes by the whole sequence (bidirectional): encoders only; a decoder "
                         "takes rule=threshold");
  if (a.heavy < 0) a.heavy = env.layer.ff_dim;
  if (a.light < 0) a.light = std::max<int64_t>(1, env.layer.ff_dim / 8);
  return std::unique_ptr<Block>(std::make_unique<RoutedFeedForwardBlock>(env, a));
}

}  // namespace longctx::layers
