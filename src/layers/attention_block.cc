#include "layers/attention_block.h"

#include <algorithm>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/attribution.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "position/alibi.h"

namespace longctx::layers {
namespace {

class AttentionBlock final : public Block {
 public:
  AttentionBlock(const BlockEnv& env, bool post_norm)
      : post_norm_(post_norm),
        layer_(env.layer),
        D_(env.settings.model_dim),
        qd_(int64_t(layer_.heads) * layer_.head_dim),
        kvd_(int64_t(layer_.kv_heads) * layer_.head_dim) {
    const Settings& s = env.settings;
    const bool norm_bias = s.norm == NormType::kLayerNorm && s.bias;
    auto matrix = [&](const char* name, int64_t rows, int64_t cols, Init init) {
      return declare({name, {rows, cols}, kF32, true, true, init, true});
    };
    auto vector = [&](const char* name, int64_t n, Init init) { return declare({name, {n}, kF32, true, false, init}); };
    // Pre-norm: the branch reads the normed input. Post-norm (BERT): the branch reads the input
    // and the norm applies to input + branch.
    const std::string norm_name = post_norm ? "attn_output_norm" : "attn_norm";
    norm_w_ = vector((norm_name + ".weight").c_str(), D_, Init::kOnes);
    if (norm_bias) norm_b_ = vector((norm_name + ".bias").c_str(), D_, Init::kZeros);
    wq_ = matrix("attn_q.weight", qd_, D_, Init::kNormal);
    if (s.bias) bq_ = vector("attn_q.bias", qd_, Init::kZeros);
    wk_ = matrix("attn_k.weight", kvd_, D_, Init::kNormal);
    if (s.bias) bk_ = vector("attn_k.bias", kvd_, Init::kZeros);
    wv_ = matrix("attn_v.weight", kvd_, D_, Init::kNormal);
    if (s.bias) bv_ = vector("attn_v.bias", kvd_, Init::kZeros);
    wo_ = declare({"attn_output.weight", {D_, qd_}, kF32, true, true, Init::kResidualOut, true, true});
    if (s.bias) bo_ = declare({"attn_output.bias", {D_}, kF32, true, false, Init::kZeros, false, true});
    declare_lora(s, wq_, "q");
    declare_lora(s, wk_, "k");
    declare_lora(s, wv_, "v");
    declare_lora(s, wo_, "o");
    if (s.pos == position::PosType::kAlibi) alibi_ = position::alibi_slopes(layer_.heads);
  }

  std::vector<kvcache::KvSlot> kv_slots() const override {
    return {kvcache::KvSlot{layer_.kv_heads, layer_.head_dim, layer_.pattern}};
  }

  int64_t forward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return arena_floats(rows * D_) + 2 * arena_floats(rows) + 2 * arena_floats(rows * qd_) +
           2 * arena_floats(rows * kvd_) + (pass.save ? arena_floats(pass.batch * layer_.heads * pass.seq_len) : 0);
  }

  int64_t backward_floats(const Pass& pass) const override {
    const int64_t rows = pass.rows();
    return 2 * arena_floats(rows * qd_) + 2 * arena_floats(rows * kvd_) + (post_norm_ ? 2 : 1) * arena_floats(rows * D_);
  }

  void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in, float* x_out) override;
  void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) override;

 private:
  // What backward needs, in the arena until then.
  struct Saved {
    const float* x_in = nullptr;  // [rows, model_dim]
    float* h = nullptr;           // pre-norm: the normed input; post-norm: input + branch, before the norm
    float* mean = nullptr;
    float* rstd = nullptr;
    float* q = nullptr;           // after RoPE
    float* k = nullptr;
    float* v = nullptr;
    float* att = nullptr;         // attention output before Wo
    float* lse = nullptr;         // [batch, heads, seq_len] log-sum-exp of the scores
  };

  // Dimensions of attention over the batch's own keys (training); the cached path overrides kv_*.
  attention::AttentionDims batch_dims(int64_t batch, int64_t seq_len) const {
    attention::AttentionDims d;
    d.batch = batch;
    d.seq_len = seq_len;
    d.kv_len = seq_len;
    d.heads = layer_.heads;
    d.kv_heads = layer_.kv_heads;
    d.head_dim = layer_.head_dim;
    d.q_stride = qd_;
    d.kv_stride = kvd_;
    d.kv_batch_stride = seq_len * kvd_;
    return d;
  }
  const float* alibi() const { return alibi_.empty() ? nullptr : alibi_.data(); }
  dist::RingDims ring_dims() const { return {layer_.heads, layer_.kv_heads, layer_.head_dim}; }
  dist::RingSpec ring_spec(bool bf16) const {
    dist::RingSpec rs;
    rs.pattern = layer_.pattern;
    rs.alibi_slopes = alibi();
    rs.tiles.bf16 = bf16;
    rs.tiles.fp32_kernels = true;
    return rs;
  }
  // RoPE (or its inverse, for gradients) on q and k of a sequence-parallel pass: each of a
  // sequence's two chunks at its global positions.
  void rope_shares(const LayerContext& ctx, float* q, float* k, int64_t batch, const dist::RingLayout& lay,
                   bool inverse) const {
    if (ctx.settings->pos != position::PosType::kRope) return;
    const int64_t c = lay.chunk(), n = lay.local_rows();
    for (int64_t b = 0; b < batch; ++b)
      for (int which = 0; which < 2; ++which) {
        const int64_t row = b * n + which * c, pos = lay.chunk_start(lay.rank, which);
        ctx.rope->apply(*ctx.pool, q + row * qd_, 1, c, layer_.heads, qd_, pos, inverse);
        ctx.rope->apply(*ctx.pool, k + row * kvd_, 1, c, layer_.kv_heads, kvd_, pos, inverse);
      }
  }
  NormParams<const float*> norm(const Weights& w) const { return {param(w, norm_w_), param(w, norm_b_)}; }

  bool post_norm_;
  LayerConfig layer_;
  int64_t D_, qd_, kvd_;
  std::vector<float> alibi_;  // per-head slopes, empty unless ALiBi
  int norm_w_ = -1, norm_b_ = -1, wq_ = -1, bq_ = -1, wk_ = -1, bk_ = -1, wv_ = -1, bv_ = -1, wo_ = -1, bo_ = -1;
  Saved saved_;
};

void AttentionBlock::forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                             float* x_out) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t batch = pass.batch, seq_len = pass.seq_len, rows = pass.rows();
  float* h = arena.alloc(rows * D_);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  const float* in = x_in;  // what the branch reads
  if (!post_norm_) {
    norm_forward(ctx, norm(w), x_in, rows, h, mean, rstd);
    in = h;
  }
  float* q = arena.alloc(rows * qd_);
  float* k = arena.alloc(rows * kvd_);
  float* v = arena.alloc(rows * kvd_);
  linear(ctx, in, rows, D_, param(w, wq_), view(w, wq_), param(w, bq_), qd_, q);
  linear(ctx, in, rows, D_, param(w, wk_), view(w, wk_), param(w, bk_), kvd_, k);
  linear(ctx, in, rows, D_, param(w, wv_), view(w, wv_), param(w, bv_), kvd_, v);
  lora_forward(ctx, lora(w, wq_), in, rows, D_, qd_, q);
  lora_forward(ctx, lora(w, wk_), in, rows, D_, kvd_, k);
  lora_forward(ctx, lora(w, wv_), in, rows, D_, kvd_, v);
  float* att = arena.alloc(rows * qd_);
  float* lse = pass.save ? arena.alloc(batch * layer_.heads * seq_len) : nullptr;
  if (pass.seqs.empty() && ctx.seq_parallel) {
    const dist::RingLayout lay = ctx.seq_parallel->layout();
    CHECK(pass.pos0 == 0 && seq_len == lay.local_rows());
    rope_shares(ctx, q, k, batch, lay, false);
    std::vector<float> scratch(lse ? 0 : 2 * layer_.heads * lay.chunk());
    for (int64_t b = 0; b < batch; ++b)
      dist::ring_forward(*ctx.seq_parallel->group, pool, lay, ring_dims(), ring_spec(ctx.bf16 && pass.save),
                         q + b * seq_len * qd_, k + b * seq_len * kvd_, v + b * seq_len * kvd_, att + b * seq_len * qd_,
                         lse ? lse + b * layer_.heads * seq_len : scratch.data());
  } else if (pass.seqs.empty()) {
    CHECK(pass.pos0 == 0);
    if (ctx.settings->pos == position::PosType::kRope) {
      ctx.rope->apply(pool, q, batch, seq_len, layer_.heads, qd_, 0, false);
      ctx.rope->apply(pool, k, batch, seq_len, layer_.kv_heads, kvd_, 0, false);
    }
    const attention::AttentionDims d = batch_dims(batch, seq_len);
    const attention::MaskView mask(layer_.pattern, seq_len);
    attention::TileSizes ts;
    // bf16 tiles when training (tiles of up to 128 x 128); an inference pass without a cache is
    // an encoder's short texts, whose small tiles are no faster in bf16 (measured on MiniLM).
    ts.bf16 = ctx.bf16 && pass.save;
    ts.fp32_kernels = true;
    attention::tiled_forward_kv(pool, d, {&mask, alibi()}, q, {k, 0}, {v, 0}, att, lse, ts);
  } else {
    // Each sequence on its own: its rows' positions, its cache, the same attention call as if
    // it ran alone. Single-token steps (decoding) are small calls: they run side by side, one
    // sequence per thread, each on a one-thread pool (the attention's tasks, and so its
    // results, do not depend on the thread count); longer steps use the whole pool each.
    CHECK(batch == 1 && !pass.save);
    auto attend = [&](size_t i, ThreadPool& p) {
      const SeqRows& sr = pass.seqs[i];
      const kvcache::KvStore& cache = pass.caches[i];
      CHECK(sr.row0 + sr.n <= rows && sr.pos0 + sr.n <= cache.capacity);
      float* qi = q + sr.row0 * qd_;
      float* ki = k + sr.row0 * kvd_;
      if (ctx.settings->pos == position::PosType::kRope) {
        ctx.rope->apply(p, qi, 1, sr.n, layer_.heads, qd_, sr.pos0, false);
        ctx.rope->apply(p, ki, 1, sr.n, layer_.kv_heads, kvd_, sr.pos0, false);
      }
      kvcache::write_rows(cache, sr.pos0, sr.n, layer_.kv_heads, layer_.head_dim, ki, v + sr.row0 * kvd_);
      attention::AttentionDims d = batch_dims(1, sr.n);
      d.q_pos0 = sr.pos0;
      d.kv_len = sr.pos0 + sr.n;
      d.kv_batch_stride = 0;
      d.kv_first = cache.first_row;
      const attention::MaskView mask(layer_.pattern, d.kv_len, sr.pos0, sr.pos0 + sr.n);
      attention::TileSizes ts;
      ts.row_invariant = ctx.row_invariant;
      // Attribution (one sequence): the rows' log-sum-exp, then each key's weight.
      std::vector<float> lse(ctx.attribution && pass.seqs.size() == 1 ? layer_.heads * sr.n : 0);
      attention::tiled_forward_kv(p, d, {&mask, alibi()}, qi, cache.k_view(), cache.v_view(), att + sr.row0 * qd_,
                                  lse.empty() ? nullptr : lse.data(), ts);
      if (!lse.empty()) attention::attention_mass(p, d, {&mask, alibi()}, qi, cache.k_view(), lse.data(), ctx.attribution);
    };
    std::vector<size_t> singles;
    for (size_t i = 0; i < pass.seqs.size(); ++i) {
      if (pass.seqs[i].n == 1)
        singles.push_back(i);
      else
        attend(i, pool);
    }
    if (singles.size() == 1) attend(singles[0], pool);
    if (singles.size() > 1)
      pool.parallel_for_dynamic(static_cast<int64_t>(singles.size()),
                                [&](int64_t t, int) { attend(singles[t], ThreadPool::calling_thread()); });
  }
  float* sum = post_norm_ ? h : x_out;
  linear_residual(ctx, att, rows, qd_, param(w, wo_), view(w, wo_), param(w, bo_), D_, x_in, sum);
  lora_forward(ctx, lora(w, wo_), att, rows, qd_, D_, sum);
  if (post_norm_) norm_forward(ctx, norm(w), h, rows, x_out, mean, rstd);
  if (pass.save) saved_ = Saved{x_in, h, mean, rstd, q, k, v, att, lse};
}

void AttentionBlock::backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) {
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const Saved& s = saved_;
  const int64_t batch = pass.batch, seq_len = pass.seq_len, rows = pass.rows();
  // Post-norm: dL/d(input + branch) first; it is both the residual's gradient and the branch's.
  const float* dy =
      post_norm_ ? post_norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.h, dx, rows, s.mean, s.rstd) : dx;
  float* datt = arena.alloc(rows * qd_);
  linear_backward(ctx, s.att, dy, rows, qd_, param(w, wo_), view(w, wo_), D_, datt, false, grad(w, wo_), grad(w, bo_));
  lora_backward(ctx, lora(w, wo_), s.att, dy, rows, qd_, D_, datt);
  float* dq = arena.alloc(rows * qd_);
  float* dk = arena.alloc_zero(rows * kvd_);
  float* dv = arena.alloc_zero(rows * kvd_);
  if (ctx.seq_parallel) {
    const dist::RingLayout lay = ctx.seq_parallel->layout();
    for (int64_t b = 0; b < batch; ++b)
      dist::ring_backward(*ctx.seq_parallel->group, pool, lay, ring_dims(), ring_spec(ctx.bf16), s.q + b * seq_len * qd_,
                          s.k + b * seq_len * kvd_, s.v + b * seq_len * kvd_, s.att + b * seq_len * qd_,
                          s.lse + b * layer_.heads * seq_len, datt + b * seq_len * qd_, dq + b * seq_len * qd_,
                          dk + b * seq_len * kvd_, dv + b * seq_len * kvd_);
    rope_shares(ctx, dq, dk, batch, lay, true);
  } else {
    const attention::AttentionDims d = batch_dims(batch, seq_len);
    const attention::MaskView mask(layer_.pattern, seq_len);
    attention::TileSizes ts;
    ts.bf16 = ctx.bf16;
    ts.fp32_kernels = true;
    attention::tiled_backward(pool, d, {&mask, alibi()}, s.q, s.k, s.v, s.att, s.lse, datt, dq, dk, dv, ts);
    if (ctx.settings->pos == position::PosType::kRope) {
      ctx.rope->apply(pool, dq, batch, seq_len, layer_.heads, qd_, 0, true);
      ctx.rope->apply(pool, dk, batch, seq_len, layer_.kv_heads, kvd_, 0, true);
    }
  }
  const float* in = post_norm_ ? s.x_in : s.h;
  float* dh = arena.alloc(rows * D_);
  linear_backward(ctx, in, dq, rows, D_, param(w, wq_), view(w, wq_), qd_, dh, false, grad(w, wq_), grad(w, bq_));
  linear_backward(ctx, in, dk, rows, D_, param(w, wk_), view(w, wk_), kvd_, dh, true, grad(w, wk_), grad(w, bk_));
  linear_backward(ctx, in, dv, rows, D_, param(w, wv_), view(w, wv_), kvd_, dh, true, grad(w, wv_), grad(w, bv_));
  lora_backward(ctx, lora(w, wq_), in, dq, rows, D_, qd_, dh);
  lora_backward(ctx, lora(w, wk_), in, dk, rows, D_, kvd_, dh);
  lora_backward(ctx, lora(w, wv_), in, dv, rows, D_, kvd_, dh);
  if (post_norm_)
    kernels::vec_add(dx, dh, dx, rows * D_);
  else
    norm_backward(ctx, norm(w), {grad(w, norm_w_), grad(w, norm_b_)}, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace

Expected<std::unique_ptr<Block>> make_attention_block(const BlockEnv& env) {
  if (!env.args.empty() && env.args != "post_norm")
    return Status::Error("attention takes no arguments or 'post_norm'");
  return std::unique_ptr<Block>(std::make_unique<AttentionBlock>(env, env.args == "post_norm"));
}

}  // namespace longctx::layers
