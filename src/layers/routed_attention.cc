#include "layers/routed_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "kernels/vec.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/routed.h"
#include "layers/routed_feed_forward.h"
#include "layers/router.h"
#include "position/alibi.h"

namespace longctx::layers {
namespace {

struct RoutedAttnArgs {
  int64_t window = 128;
  int64_t light_heads = -1;  // -1: heads / 4
  double route_q = 1.0 / 16, route_kv = 1.0 / 8;
  bool topk = false;  // the encoder form (rule=topk)
};

// One attention branch's tensors and heads.
struct Branch {
  int heads = 0, kv_heads = 0;
  int64_t qd = 0, kvd = 0;
  int q = -1, bq = -1, k = -1, bk = -1, v = -1, bv = -1, o = -1, bo = -1;
  std::vector<float> alibi;  // per-head slopes, empty unless ALiBi
  const float* slopes() const { return alibi.empty() ? nullptr : alibi.data(); }
};

// One router's tensors and last decisions.
struct RouterState {
  double fraction = 1;
  int u = -1, tau = -1;
  Routing routing;
  RouteCount counted;
};

class RoutedAttentionBlock final : public Block {
 public:
  RoutedAttentionBlock(const BlockEnv& env, const RoutedAttnArgs& a, int light_kv_heads, int heavy_kv_heads)
      : D_(env.settings.model_dim), dh_(env.layer.head_dim), window_(a.window), topk_(a.topk) {
    // The light heads' pattern: a causal window for a decoder; for an encoder, LongT5's
    // block-local attention (blocks of `window` tokens, each seeing its own block and both
    // neighbours: a bidirectional BigBird without global or random blocks).
    if (topk_)
      light_pattern_ = attention::BigBird{window_, 3, 0, 0, 0, false};
    else
      light_pattern_ = attention::SlidingWindow{window_};
    const Settings& s = env.settings;
    norm_w_ = declare({"attn_norm.weight", {D_}, kF32, true, false, Init::kOnes});
    if (s.norm == NormType::kLayerNorm && s.bias) norm_b_ = declare({"attn_norm.bias", {D_}, kF32, true, false, Init::kZeros});
    heavy_ = declare_branch(s, "attn_", static_cast<int>(env.layer.heads - a.light_heads), heavy_kv_heads, true);
    if (a.light_heads > 0) light_ = declare_branch(s, "attn_light_", static_cast<int>(a.light_heads), light_kv_heads, false);
    rq_.fraction = a.route_q;
    rkv_.fraction = a.route_kv;
    declare_router(&rq_, "attn_router_q");
    declare_router(&rkv_, "attn_router_kv");
  }

  std::vector<kvcache::KvSlot> kv_slots() const override {
    std::vector<kvcache::KvSlot> slots;
    if (light_.heads > 0) slots.push_back({light_.kv_heads, static_cast<int>(dh_), light_pattern_});
    kvcache::KvSlot heavy{heavy_.kv_heads, static_cast<int>(dh_), attention::Causal{}};
    heavy.compact = true;
    slots.push_back(heavy);
    return slots;
  }

  int64_t forward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    int64_t f = arena_floats(rows * D_) + 2 * arena_floats(rows);
    if (light_.heads > 0)
      f += 2 * arena_floats(rows * light_.qd) + 2 * arena_floats(rows * light_.kvd) +
           (pass.save ? arena_floats(pass.batch * light_.heads * pass.seq_len) : 0);
    // The heavy branch sized for every row routed (the threshold rule has no capacity limit).
    f += 2 * arena_floats(rows * D_) + 2 * arena_floats(rows * heavy_.qd) + 2 * arena_floats(rows * heavy_.kvd) +
         (pass.save ? arena_floats(heavy_.heads * rows) : 0) + arena_floats(rows * D_);
    return f;
  }
  int64_t backward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    int64_t f = arena_floats(rows * D_);
    if (light_.heads > 0) f += 2 * arena_floats(rows * light_.qd) + 2 * arena_floats(rows * light_.kvd);
    f += arena_floats(rows * D_) + 2 * arena_floats(rows * heavy_.qd) + 2 * arena_floats(rows * heavy_.kvd) +
         2 * arena_floats(rows * D_);
    return f;
  }
  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;
  std::vector<RouteCount> take_route_counts() override {
    std::vector<RouteCount> out{std::move(rq_.counted), std::move(rkv_.counted)};
    out[0].router = "attn_q";
    out[1].router = "attn_kv";
    rq_.counted = rkv_.counted = {};
    return out;
  }

 private:
  Branch declare_branch(const Settings& s, const std::string& prefix, int heads, int kv_heads, bool lora) {
    Branch b;
    b.heads = heads;
    b.kv_heads = kv_heads;
    b.qd = int64_t(heads) * dh_;
    b.kvd = int64_t(kv_heads) * dh_;
    auto matrix = [&](const std::string& name, int64_t rows, int64_t cols, Init init, bool out) {
      return declare({prefix + name, {rows, cols}, kF32, true, true, init, true, out});
    };
    auto vector = [&](const std::string& name, int64_t n, bool out) {
      return declare({prefix + name, {n}, kF32, true, false, Init::kZeros, false, out});
    };
    b.q = matrix("q.weight", b.qd, D_, Init::kNormal, false);
    if (s.bias) b.bq = vector("q.bias", b.qd, false);
    b.k = matrix("k.weight", b.kvd, D_, Init::kNormal, false);
    if (s.bias) b.bk = vector("k.bias", b.kvd, false);
    b.v = matrix("v.weight", b.kvd, D_, Init::kNormal, false);
    if (s.bias) b.bv = vector("v.bias", b.kvd, false);
    b.o = matrix("output.weight", D_, b.qd, Init::kResidualOut, true);
    if (s.bias) b.bo = vector("output.bias", D_, true);
    if (lora) {  // LoRA targets name the dense block's matrices: the heavy branch's
      declare_lora(s, b.q, "q");
      declare_lora(s, b.k, "k");
      declare_lora(s, b.v, "v");
      declare_lora(s, b.o, "o");
    }
    if (s.pos == position::PosType::kAlibi) b.alibi = position::alibi_slopes(heads);
    return b;
  }
  void declare_router(RouterState* r, const std::string& name) {
    if (r->fraction >= 1) return;
    r->u = declare({name + ".weight", {D_}, kF32, true, false, Init::kNormal});
    if (topk_) return;  // the encoder form has no threshold
    TensorDecl t{name + ".threshold", {1}, kF32, true, false, Init::kValue};
    t.init_value = initial_threshold(r->fraction);
    t.statistic = true;
    r->tau = declare(t);
  }
  void route_rows(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* h, RouterState* r) {
    if (r->u >= 0 && topk_)
      route_topk(*ctx.pool, h, pass.batch, pass.seq_len, D_, param(w, r->u), r->fraction, &r->routing);
    else if (r->u >= 0)
      route(*ctx.pool, h, pass.rows(), D_, param(w, r->u), *param(w, r->tau), pass.save ? r->fraction : 0.0,
            &r->routing);
    else
      route_all(pass.rows(), &r->routing);
    r->counted.routed += static_cast<int64_t>(r->routing.rows.size());
    r->counted.considered += pass.rows();
    if (ctx.route_trace) append_positions(pass, r->routing.rows, &r->counted.positions);
  }
  // q [mq, qd] from xq, k and v [mk, kvd] from xkv, each through its context's row groups.
  void project(const LayerContext& cq, const LayerContext& ckv, const Weights& w, const Branch& b, const float* xq,
               int64_t mq, const float* xkv, int64_t mk, float* q, float* k, float* v) const {
    linear(cq, xq, mq, D_, param(w, b.q), view(w, b.q), param(w, b.bq), b.qd, q);
    lora_forward(cq, lora(w, b.q), xq, mq, D_, b.qd, q);
    linear(ckv, xkv, mk, D_, param(w, b.k), view(w, b.k), param(w, b.bk), b.kvd, k);
    lora_forward(ckv, lora(w, b.k), xkv, mk, D_, b.kvd, k);
    linear(ckv, xkv, mk, D_, param(w, b.v), view(w, b.v), param(w, b.bv), b.kvd, v);
    lora_forward(ckv, lora(w, b.v), xkv, mk, D_, b.kvd, v);
  }
  // d(xq) = dq Wq (overwritten), d(xkv) = dk Wk + dv Wv (overwritten), and the weights' gradients.
  void project_backward(const LayerContext& ctx, const Weights& w, const Branch& b, const float* xq, int64_t mq,
                        const float* xkv, int64_t mk, const float* dq, const float* dk, const float* dv, float* dxq,
                        float* dxkv, bool accumulate) const {
    linear_backward(ctx, xq, dq, mq, D_, param(w, b.q), view(w, b.q), b.qd, dxq, accumulate, grad(w, b.q), grad(w, b.bq));
    lora_backward(ctx, lora(w, b.q), xq, dq, mq, D_, b.qd, dxq);
    linear_backward(ctx, xkv, dk, mk, D_, param(w, b.k), view(w, b.k), b.kvd, dxkv, accumulate || dxkv == dxq,
                    grad(w, b.k), grad(w, b.bk));
    lora_backward(ctx, lora(w, b.k), xkv, dk, mk, D_, b.kvd, dxkv);
    linear_backward(ctx, xkv, dv, mk, D_, param(w, b.v), view(w, b.v), b.kvd, dxkv, true, grad(w, b.v), grad(w, b.bv));
    lora_backward(ctx, lora(w, b.v), xkv, dv, mk, D_, b.kvd, dxkv);
  }
  attention::AttentionDims dims(const Branch& b, int64_t batch, int64_t seq_len, int64_t kv_len) const {
    attention::AttentionDims d;
    d.batch = batch;
    d.seq_len = seq_len;
    d.kv_len = kv_len;
    d.heads = b.heads;
    d.kv_heads = b.kv_heads;
    d.head_dim = static_cast<int>(dh_);
    d.q_stride = b.qd;
    d.kv_stride = b.kvd;
    d.kv_batch_stride = kv_len * b.kvd;
    return d;
  }
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }
  bool rope(const LayerContext& ctx) const { return ctx.settings->pos == position::PosType::kRope; }
  // Routed rows of sequence b of a training pass: [first, last) of a routing's rows.
  static std::pair<int64_t, int64_t> seq_range(const std::vector<int64_t>& rows, int64_t lo, int64_t hi) {
    return {std::lower_bound(rows.begin(), rows.end(), lo) - rows.begin(),
            std::lower_bound(rows.begin(), rows.end(), hi) - rows.begin()};
  }
  attention::Pattern heavy_pattern_of() const {
    return topk_ ? attention::Pattern(attention::Full{}) : attention::Pattern(attention::Causal{});
  }
  // The heavy attention of a pass without a cache, sequence by sequence (each its own routed
  // counts): f(first routed query, first routed key/value, dims over their gathered rows, spec,
  // tiles) for each sequence with both.
  template <class F>
  void for_sequences(int64_t batch, int64_t T, bool bf16, F&& f) const {
    const attention::Pattern pattern = heavy_pattern_of();
    const Routing& rq = rq_.routing;
    const Routing& rkv = rkv_.routing;
    for (int64_t s = 0; s < batch; ++s) {
      const auto [q0, q1] = seq_range(rq.rows, s * T, (s + 1) * T);
      const auto [k0, k1] = seq_range(rkv.rows, s * T, (s + 1) * T);
      if (q1 == q0 || k1 == k0) continue;
      attention::AttentionDims d = dims(heavy_, 1, q1 - q0, k1 - k0);
      d.q_pos = q_pos_.data() + q0;
      d.k_pos = k_pos_.data() + k0;
      const attention::MaskView mask(pattern, d.kv_len);
      attention::TileSizes ts;
      ts.bf16 = bf16;
      ts.fp32_kernels = true;
      f(q0, k0, d, attention::AttentionSpec{&mask, heavy_.slopes()}, ts);
    }
  }
  void light_forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* h, float* x_out);
  void heavy_forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* h, float* x_out);

  struct Saved {
    const float* x_in = nullptr;
    float *h = nullptr, *mean = nullptr, *rstd = nullptr;
    float *lq = nullptr, *lk = nullptr, *lv = nullptr, *latt = nullptr, *llse = nullptr;  // light
    float *hq = nullptr, *hkv = nullptr;  // heavy: the routed rows of h (key/values scaled by their gates)
    float *q = nullptr, *k = nullptr, *v = nullptr, *att = nullptr, *lse = nullptr, *y = nullptr;
  };

  int64_t D_, dh_, window_;
  bool topk_;
  attention::Pattern light_pattern_;
  int norm_w_ = -1, norm_b_ = -1;
  Branch light_, heavy_;
  RouterState rq_, rkv_;
  std::vector<int64_t> q_pos_, k_pos_;  // positions of the routed rows (RoPE, the gathered attention)
  Saved saved_;
};

void RoutedAttentionBlock::forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                                   float* x_out) {
  CHECK_MSG(!ctx.seq_parallel, "routed attention does not run sequence-parallel");
  Arena& arena = *ctx.arena;
  const int64_t rows = pass.rows();
  float* h = arena.alloc(rows * D_);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
  std::copy(x_in, x_in + rows * D_, x_out);
  saved_ = Saved{x_in, h, mean, rstd};
  if (light_.heads > 0) light_forward(ctx, w, pass, h, x_out);
  heavy_forward(ctx, w, pass, h, x_out);
}

void RoutedAttentionBlock::light_forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* h,
                                         float* x_out) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Branch& b = light_;
  const int64_t batch = pass.batch, T = pass.seq_len, rows = pass.rows();
  float* q = arena.alloc(rows * b.qd);
  float* k = arena.alloc(rows * b.kvd);
  float* v = arena.alloc(rows * b.kvd);
  project(ctx, ctx, w, b, h, rows, h, rows, q, k, v);
  float* att = arena.alloc(rows * b.qd);
  float* lse = pass.save ? arena.alloc(batch * b.heads * T) : nullptr;
  const attention::Pattern& pattern = light_pattern_;
  if (pass.seqs.empty()) {
    if (rope(ctx)) {
      ctx.rope->apply(pool, q, batch, T, b.heads, b.qd, 0, false);
      ctx.rope->apply(pool, k, batch, T, b.kv_heads, b.kvd, 0, false);
    }
    const attention::MaskView mask(pattern, T);
    attention::TileSizes ts;
    ts.bf16 = ctx.bf16 && pass.save;
    ts.fp32_kernels = true;
    attention::tiled_forward_kv(pool, dims(b, batch, T, T), {&mask, b.slopes()}, q, {k, 0}, {v, 0}, att, lse, ts);
  } else {
    CHECK_MSG(!topk_, "the encoder form of routed attention runs without a cache");
    CHECK(batch == 1 && !pass.save && pass.caches);
    for (size_t i = 0; i < pass.seqs.size(); ++i) {
      const SeqRows& sr = pass.seqs[i];
      const kvcache::KvStore& cache = pass.caches[i * 2];
      float* qi = q + sr.row0 * b.qd;
      float* ki = k + sr.row0 * b.kvd;
      if (rope(ctx)) {
        ctx.rope->apply(pool, qi, 1, sr.n, b.heads, b.qd, sr.pos0, false);
        ctx.rope->apply(pool, ki, 1, sr.n, b.kv_heads, b.kvd, sr.pos0, false);
      }
      kvcache::write_rows(cache, sr.pos0, sr.n, b.kv_heads, dh_, ki, v + sr.row0 * b.kvd);
      attention::AttentionDims d = dims(b, 1, sr.n, sr.pos0 + sr.n);
      d.q_pos0 = sr.pos0;
      d.kv_batch_stride = 0;
      d.kv_first = cache.first_row;
      const attention::MaskView mask(pattern, d.kv_len, sr.pos0, sr.pos0 + sr.n);
      attention::TileSizes ts;
      ts.row_invariant = ctx.row_invariant;
      attention::tiled_forward_kv(pool, d, {&mask, b.slopes()}, qi, cache.k_view(), cache.v_view(), att + sr.row0 * b.qd,
                                  nullptr, ts);
    }
  }
  linear_residual(ctx, att, rows, b.qd, param(w, b.o), view(w, b.o), param(w, b.bo), D_, x_out, x_out);
  lora_forward(ctx, lora(w, b.o), att, rows, b.qd, D_, x_out);
  saved_.lq = q;
  saved_.lk = k;
  saved_.lv = v;
  saved_.latt = att;
  saved_.llse = lse;
}

void RoutedAttentionBlock::heavy_forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* h,
                                         float* x_out) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Branch& b = heavy_;
  const int64_t T = pass.seq_len;
  route_rows(ctx, w, pass, h, &rq_);
  route_rows(ctx, w, pass, h, &rkv_);
  const Routing& rq = rq_.routing;
  const Routing& rkv = rkv_.routing;
  const int64_t mq = static_cast<int64_t>(rq.rows.size()), mk = static_cast<int64_t>(rkv.rows.size());
  float* hq = arena.alloc(mq * D_);
  float* hkv = arena.alloc(mk * D_);
  gather_rows(pool, h, D_, rq.rows, hq);
  gather_rows(pool, h, D_, rkv.rows, hkv);
  for (int64_t j = 0; j < mk; ++j) kernels::vec_scale(hkv + j * D_, rkv.gate[j], D_);
  float* q = arena.alloc(mq * b.qd);
  float* k = arena.alloc(mk * b.kvd);
  float* v = arena.alloc(mk * b.kvd);
  {
    const GatheredContext gq(ctx, rq.rows), gkv(ctx, rkv.rows);
    project(gq.ctx, gkv.ctx, w, b, hq, mq, hkv, mk, q, k, v);
  }
  q_pos_.clear();
  k_pos_.clear();
  append_positions(pass, rq.rows, &q_pos_);
  append_positions(pass, rkv.rows, &k_pos_);
  if (rope(ctx)) {
    ctx.rope->apply_at(pool, q, mq, b.heads, b.qd, q_pos_.data(), false);
    ctx.rope->apply_at(pool, k, mk, b.kv_heads, b.kvd, k_pos_.data(), false);
  }
  float* att = arena.alloc(mq * b.qd);
  float* lse = pass.save ? arena.alloc(b.heads * mq) : nullptr;
  std::fill(att, att + mq * b.qd, 0.0f);  // queries that see no routed key
  if (lse) std::fill(lse, lse + b.heads * mq, -std::numeric_limits<float>::infinity());
  const attention::Pattern heavy_pattern = heavy_pattern_of();
  if (pass.seqs.empty()) {
    for_sequences(pass.batch, T, ctx.bf16 && pass.save,
                  [&](int64_t q0, int64_t k0, const attention::AttentionDims& d, const attention::AttentionSpec& spec,
                      const attention::TileSizes& ts) {
                    attention::tiled_forward(pool, d, spec, q + q0 * b.qd, k + k0 * b.kvd, v + k0 * b.kvd, att + q0 * b.qd,
                                             lse ? lse + b.heads * q0 : nullptr, ts);
                  });
  } else {
    // Each sequence: its routed key/values join its compact slot, then its routed queries
    // attend over every routed row the slot holds.
    CHECK(pass.batch == 1 && !pass.save && pass.caches);
    const size_t slots = light_.heads > 0 ? 2 : 1;
    for (size_t i = 0; i < pass.seqs.size(); ++i) {
      const SeqRows& sr = pass.seqs[i];
      const kvcache::KvStore& cache = pass.caches[i * slots + slots - 1];
      CHECK(cache.positions);
      std::vector<int64_t>& held = *cache.positions;
      CHECK(held.empty() || held.back() < sr.pos0);
      const auto [q0, q1] = seq_range(rq.rows, sr.row0, sr.row0 + sr.n);
      const auto [k0, k1] = seq_range(rkv.rows, sr.row0, sr.row0 + sr.n);
      const int64_t r0 = static_cast<int64_t>(held.size());
      CHECK(r0 + (k1 - k0) <= cache.capacity);
      if (k1 > k0) {
        kvcache::write_rows(cache, r0, k1 - k0, b.kv_heads, dh_, k + k0 * b.kvd, v + k0 * b.kvd);
        held.insert(held.end(), k_pos_.begin() + k0, k_pos_.begin() + k1);
      }
      if (q1 == q0 || held.empty()) continue;
      attention::AttentionDims d = dims(b, 1, q1 - q0, static_cast<int64_t>(held.size()));
      d.kv_batch_stride = 0;
      d.q_pos = q_pos_.data() + q0;
      d.k_pos = held.data();
      const attention::MaskView mask(heavy_pattern, d.kv_len);
      attention::tiled_forward_kv(pool, d, {&mask, b.slopes()}, q + q0 * b.qd, cache.k_view(), cache.v_view(),
                                  att + q0 * b.qd, nullptr, {});
    }
  }
  float* y = arena.alloc(mq * D_);
  {
    const GatheredContext gq(ctx, rq.rows);
    linear(gq.ctx, att, mq, b.qd, param(w, b.o), view(w, b.o), param(w, b.bo), D_, y);
    lora_forward(gq.ctx, lora(w, b.o), att, mq, b.qd, D_, y);
  }
  scatter_add_rows(pool, y, D_, rq.rows, rq.gate.data(), x_out);
  saved_.hq = hq;
  saved_.hkv = hkv;
  saved_.q = q;
  saved_.k = k;
  saved_.v = v;
  saved_.att = att;
  saved_.lse = lse;
  saved_.y = y;
}

void RoutedAttentionBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t batch = pass.batch, T = pass.seq_len, rows = pass.rows();
  float* dh = arena.alloc_zero(rows * D_);
  if (light_.heads > 0) {
    const Branch& b = light_;
    float* datt = arena.alloc(rows * b.qd);
    linear_backward(ctx, s.latt, dx, rows, b.qd, param(w, b.o), view(w, b.o), D_, datt, false, grad(w, b.o), grad(w, b.bo));
    lora_backward(ctx, lora(w, b.o), s.latt, dx, rows, b.qd, D_, datt);
    float* dq = arena.alloc(rows * b.qd);
    float* dk = arena.alloc_zero(rows * b.kvd);
    float* dv = arena.alloc_zero(rows * b.kvd);
    const attention::MaskView mask(light_pattern_, T);
    attention::TileSizes ts;
    ts.bf16 = ctx.bf16;
    ts.fp32_kernels = true;
    attention::tiled_backward(pool, dims(b, batch, T, T), {&mask, b.slopes()}, s.lq, s.lk, s.lv, s.latt, s.llse, datt, dq,
                              dk, dv, ts);
    if (rope(ctx)) {
      ctx.rope->apply(pool, dq, batch, T, b.heads, b.qd, 0, true);
      ctx.rope->apply(pool, dk, batch, T, b.kv_heads, b.kvd, 0, true);
    }
    project_backward(ctx, w, b, s.h, rows, s.h, rows, dq, dk, dv, dh, dh, true);
  }
  // Heavy: y_j scaled by gate_j and added to row r_j.
  const Branch& b = heavy_;
  const Routing& rq = rq_.routing;
  const Routing& rkv = rkv_.routing;
  const int64_t mq = static_cast<int64_t>(rq.rows.size()), mk = static_cast<int64_t>(rkv.rows.size());
  float* dy = arena.alloc(mq * D_);
  std::vector<float> dgate_q(static_cast<size_t>(mq)), dgate_kv(static_cast<size_t>(mk));
  gather_rows_backward(pool, dx, D_, rq.rows, rq.gate.data(), s.y, dy, dgate_q.data());
  float* datt = arena.alloc(mq * b.qd);
  linear_backward(ctx, s.att, dy, mq, b.qd, param(w, b.o), view(w, b.o), D_, datt, false, grad(w, b.o), grad(w, b.bo));
  lora_backward(ctx, lora(w, b.o), s.att, dy, mq, b.qd, D_, datt);
  float* dq = arena.alloc_zero(mq * b.qd);
  float* dk = arena.alloc_zero(mk * b.kvd);
  float* dv = arena.alloc_zero(mk * b.kvd);
  for_sequences(batch, T, ctx.bf16,
                [&](int64_t q0, int64_t k0, const attention::AttentionDims& d, const attention::AttentionSpec& spec,
                    const attention::TileSizes& ts) {
                  attention::tiled_backward(pool, d, spec, s.q + q0 * b.qd, s.k + k0 * b.kvd, s.v + k0 * b.kvd,
                                            s.att + q0 * b.qd, s.lse + b.heads * q0, datt + q0 * b.qd, dq + q0 * b.qd,
                                            dk + k0 * b.kvd, dv + k0 * b.kvd, ts);
                });
  if (rope(ctx)) {
    ctx.rope->apply_at(pool, dq, mq, b.heads, b.qd, q_pos_.data(), true);
    ctx.rope->apply_at(pool, dk, mk, b.kv_heads, b.kvd, k_pos_.data(), true);
  }
  float* dhq = arena.alloc(mq * D_);
  float* dhkv = arena.alloc(mk * D_);
  project_backward(ctx, w, b, s.hq, mq, s.hkv, mk, dq, dk, dv, dhq, dhkv, false);
  scatter_add_rows(pool, dhq, D_, rq.rows, nullptr, dh);
  // hkv_j = gate_j h[r_j]: dh[r_j] += gate_j dhkv_j, dgate_j = dhkv_j . h[r_j].
  for (int64_t j = 0; j < mk; ++j) dgate_kv[j] = kernels::vec_dot(dhkv + j * D_, s.h + rkv.rows[j] * D_, D_);
  scatter_add_rows(pool, dhkv, D_, rkv.rows, rkv.gate.data(), dh);
  for (RouterState* r : {&rq_, &rkv_})
    if (r->u >= 0)
      route_backward(r->routing, s.h, D_, param(w, r->u), topk_ ? 0.0f : *param(w, r->tau),
                     r == &rq_ ? dgate_q.data() : dgate_kv.data(), dh, grad(w, r->u), grad(w, r->tau));
  norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace

Expected<std::unique_ptr<Block>> make_routed_attention_block(const BlockEnv& env) {
  RoutedAttnArgs a;
  auto kv = parse_block_args(env.args, {"window", "light_heads", "route_q", "route_kv", "rule"});
  if (!kv.ok()) return kv.status();
  for (const auto& [key, value] : *kv) {
    if (key == "rule") {
      auto topk = parse_rule(value);
      if (!topk.ok()) return topk.status();
      a.topk = *topk;
      continue;
    }
    if (key == "route_q" || key == "route_kv") {
      auto f = parse_fraction(value);
      if (!f.ok()) return f.status().Wrap(key);
      (key == "route_q" ? a.route_q : a.route_kv) = *f;
      continue;
    }
    auto n = parse_size_arg(key, value, key == "window" ? 1 : 0);
    if (!n.ok()) return n.status();
    (key == "window" ? a.window : a.light_heads) = *n;
  }
  const LayerConfig& l = env.layer;
  if (a.topk && env.settings.output_head)
    return Status::Error("rule=topk routes by the whole sequence (bidirectional): encoders only; a decoder takes "
                         "rule=threshold");
  if (!a.topk && !env.settings.output_head)
    return Status::Error("an encoder's routed_attention takes rule=topk (the threshold rule is the causal one)");
  if (a.topk ? !std::holds_alternative<attention::Full>(l.pattern) : !std::holds_alternative<attention::Causal>(l.pattern))
    return Status::Error(std::string("routed_attention brings its own patterns (local for the light heads, all routed "
                                     "rows for the heavy ones): the layer's pattern must be the plain ") +
                         (a.topk ? "full" : "causal") + " one");
  const bool mqa = l.kv_heads == 1 && l.heads > 1;
  if (a.light_heads < 0) {  // a quarter of the heads, whole kv groups under grouped-query attention
    const int64_t group = mqa ? 1 : l.heads / l.kv_heads;
    a.light_heads = std::max<int64_t>(group, l.heads / 4 / group * group);
  }
  if (a.light_heads >= l.heads)
    return Status::Error("light_heads=" + std::to_string(a.light_heads) + " leaves no heavy head (the layer has " +
                         std::to_string(l.heads) + " heads)");
  const int64_t heavy = l.heads - a.light_heads;
  int light_kv = static_cast<int>(a.light_heads), heavy_kv = static_cast<int>(heavy);
  if (mqa) {  // multi-query: one kv head per branch
    heavy_kv = 1;
    light_kv = a.light_heads > 0 ? 1 : 0;
  } else if (l.kv_heads != l.heads) {  // grouped-query: the heavy heads keep the layer's kv_heads
    const int64_t group = l.heads / l.kv_heads;
    if (heavy % l.kv_heads != 0 || a.light_heads % group != 0)
      return Status::Error("with " + std::to_string(l.heads) + " heads over " + std::to_string(l.kv_heads) +
                           " kv_heads, light_heads must be a multiple of " + std::to_string(group) +
                           " that leaves a multiple of " + std::to_string(l.kv_heads) + " heavy heads");
    heavy_kv = l.kv_heads;
    light_kv = static_cast<int>(a.light_heads / group);
  }
  return std::unique_ptr<Block>(std::make_unique<RoutedAttentionBlock>(env, a, light_kv, heavy_kv));
}

}  // namespace longctx::layers
