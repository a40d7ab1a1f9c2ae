// Pre-norm self-attention block: x_out = x_in + Wo . attend(rope(Wq h), rope(Wk h), Wv h),
// h = norm(x_in). Shapes: x [batch * seq_len, model_dim]; q [.., heads * head_dim];
// k, v [.., kv_heads * head_dim].
// One code path for training and inference: with a KvStore (batch 1) the new keys/values are
// written into it at pos0 and the queries attend over its rows [0, pos0 + seq_len); without one
// they attend over the batch's own keys. `saved` is filled only when training.
#pragma once
#include <cstdint>
#include <vector>

#include "layers/context.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "model/params.h"

namespace longctx::layers {

template <class P>
struct AttentionParams {
  NormParams<P> norm;
  P wq = nullptr, bq = nullptr, wk = nullptr, bk = nullptr, wv = nullptr, bv = nullptr, wo = nullptr,
    bo = nullptr;
  static AttentionParams at(P base, const model::LayerOffsets& o) {
    auto f = [&](int64_t off) { return off < 0 ? P(nullptr) : base + off; };
    AttentionParams a;
    a.norm = {f(o.attn_norm_w), f(o.attn_norm_b)};
    a.wq = f(o.wq); a.bq = f(o.bq); a.wk = f(o.wk); a.bk = f(o.bk);
    a.wv = f(o.wv); a.bv = f(o.bv); a.wo = f(o.wo); a.bo = f(o.bo);
    return a;
  }
};

struct AttentionSaved {
  const float* x_in = nullptr;  // [rows, model_dim]
  float* h = nullptr;           // normed input
  float* mean = nullptr;
  float* rstd = nullptr;
  float* q = nullptr;           // after RoPE
  float* k = nullptr;
  float* v = nullptr;
  float* att = nullptr;         // attention output before Wo
  float* lse = nullptr;         // [batch, heads, seq_len] log-sum-exp of the scores
};

// x_out may not alias x_in. alibi: per-head slopes or null. mats: the inference views of the
// matrices (null, or views without data: the fp32 parameters in p).
void attention_forward(const LayerContext& ctx, const model::LayerConfig& lc, AttentionParams<const float*> p,
                       const BlockMatrices* mats, const float* alibi, const float* x_in, int64_t batch, int64_t seq_len, int64_t pos0,
                       KvStore* cache, float* x_out, AttentionSaved* saved);

// dx: on entry the gradient w.r.t. x_out, on exit w.r.t. x_in. Gradients accumulate into g.
void attention_backward(const LayerContext& ctx, const model::LayerConfig& lc, AttentionParams<const float*> p,
                        AttentionParams<float*> g, const float* alibi, const AttentionSaved& s, int64_t batch,
                        int64_t seq_len, float* dx);

}  // namespace longctx::layers
