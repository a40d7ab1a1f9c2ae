#include "layers/attention_block.h"

#include "quant/fp16.h"
#include "quant/formats.h"

#include <cstring>

#include "attention/attention.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::layers {
namespace {

// Dimensions of attention over the batch's own keys (training); the cached path overrides kv_*.
attention::AttentionDims batch_dims(const model::LayerConfig& lc, int64_t batch, int64_t seq_len) {
  attention::AttentionDims d;
  d.batch = batch;
  d.seq_len = seq_len;
  d.kv_len = seq_len;
  d.heads = lc.heads;
  d.kv_heads = lc.kv_heads;
  d.head_dim = lc.head_dim;
  d.q_stride = int64_t(lc.heads) * lc.head_dim;
  d.kv_stride = int64_t(lc.kv_heads) * lc.head_dim;
  d.kv_batch_stride = seq_len * d.kv_stride;
  return d;
}

}  // namespace

void attention_forward(const LayerContext& ctx, const model::LayerConfig& lc, AttentionParams<const float*> p,
                       const BlockMatrices* mats, const float* alibi, const float* x_in, int64_t batch, int64_t seq_len, int64_t pos0,
                       KvStore* cache, float* x_out, AttentionSaved* saved) {
  const auto& c = *ctx.config;
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t rows = batch * seq_len, D = c.model_dim;
  const int64_t qd = int64_t(lc.heads) * lc.head_dim, kvd = int64_t(lc.kv_heads) * lc.head_dim;
  float* h = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  norm_forward(ctx, p.norm, x_in, rows, h, mean, rstd);
  float* q = arena.alloc(rows * qd);
  float* k = arena.alloc(rows * kvd);
  float* v = arena.alloc(rows * kvd);
  linear(ctx, h, rows, D, p.wq, mats ? &mats->wq : nullptr, p.bq, qd, q);
  linear(ctx, h, rows, D, p.wk, mats ? &mats->wk : nullptr, p.bk, kvd, k);
  linear(ctx, h, rows, D, p.wv, mats ? &mats->wv : nullptr, p.bv, kvd, v);
  if (c.pos == model::PosType::kRope) {
    ctx.rope->apply(pool, q, batch, seq_len, lc.heads, qd, pos0, false);
    ctx.rope->apply(pool, k, batch, seq_len, lc.kv_heads, kvd, pos0, false);
  }
  attention::AttentionDims d = batch_dims(lc, batch, seq_len);
  d.q_pos0 = pos0;
  attention::KvView kk{k, 0}, vv{v, 0};
  if (cache) {
    CHECK(batch == 1 && pos0 + seq_len <= cache->capacity);
    // New rows into their pages, head by head, in the cache's element types (fp16: rounded to
    // nearest even; Q8_0: ggml's reference quantizer).
    const int64_t page_mask = (int64_t{1} << cache->page_shift) - 1, hd = lc.head_dim;
    auto put = [&](uint8_t* const* pages, int64_t row_bytes, int64_t head_stride, uint32_t type, const float* src) {
      for (int64_t t = 0; t < seq_len; ++t) {
        const int64_t p = pos0 + t;
        for (int g = 0; g < lc.kv_heads; ++g) {
          uint8_t* dst = pages[p >> cache->page_shift] + g * head_stride + (p & page_mask) * row_bytes;
          const float* x = src + t * kvd + g * hd;
          if (type == kF32)
            std::memcpy(dst, x, hd * sizeof(float));
          else if (type == kF16)
            quant::fp32_to_fp16_row(x, reinterpret_cast<uint16_t*>(dst), hd);
          else
            CHECK(quant::quantize_row(type, x, dst, hd).ok());
        }
      }
    };
    put(cache->k_pages, cache->k_row_bytes, cache->k_head_stride, cache->k_type, k);
    put(cache->v_pages, cache->v_row_bytes, cache->v_head_stride, cache->v_type, v);
    kk = {nullptr, cache->k_type, cache->k_pages, cache->page_shift, cache->k_row_bytes, cache->k_head_stride};
    vv = {nullptr, cache->v_type, cache->v_pages, cache->page_shift, cache->v_row_bytes, cache->v_head_stride};
    d.kv_len = pos0 + seq_len;
    d.kv_stride = kvd;
    d.kv_batch_stride = 0;
    d.kv_first = cache->first_row;
  } else {
    CHECK(pos0 == 0);
  }
  float* att = arena.alloc(rows * qd);
  float* lse = saved ? arena.alloc(batch * lc.heads * seq_len) : nullptr;
  const attention::MaskView mask(lc.pattern, d.kv_len, pos0, pos0 + seq_len);
  attention::tiled_forward_kv(pool, d, {&mask, alibi}, q, kk, vv, att, lse);
  linear_residual(ctx, att, rows, qd, p.wo, mats ? &mats->wo : nullptr, p.bo, D, x_in, x_out);
  if (saved) *saved = AttentionSaved{x_in, h, mean, rstd, q, k, v, att, lse};
}

void attention_backward(const LayerContext& ctx, const model::LayerConfig& lc, AttentionParams<const float*> p,
                        AttentionParams<float*> g, const float* alibi, const AttentionSaved& s, int64_t batch,
                        int64_t seq_len, float* dx) {
  const auto& c = *ctx.config;
  ThreadPool& pool = *ctx.pool;
  Arena& arena = *ctx.arena;
  const int64_t rows = batch * seq_len, D = c.model_dim;
  const int64_t qd = int64_t(lc.heads) * lc.head_dim, kvd = int64_t(lc.kv_heads) * lc.head_dim;
  float* datt = arena.alloc(rows * qd);
  kernels::linear_backward(pool, s.att, dx, rows, qd, p.wo, D, datt, false, g.wo, g.bo);
  float* dq = arena.alloc(rows * qd);
  float* dk = arena.alloc_zero(rows * kvd);
  float* dv = arena.alloc_zero(rows * kvd);
  const attention::AttentionDims d = batch_dims(lc, batch, seq_len);
  const attention::MaskView mask(lc.pattern, seq_len);
  attention::tiled_backward(pool, d, {&mask, alibi}, s.q, s.k, s.v, s.att, s.lse, datt, dq, dk, dv);
  if (c.pos == model::PosType::kRope) {
    ctx.rope->apply(pool, dq, batch, seq_len, lc.heads, qd, 0, true);
    ctx.rope->apply(pool, dk, batch, seq_len, lc.kv_heads, kvd, 0, true);
  }
  float* dh = arena.alloc(rows * D);
  kernels::linear_backward(pool, s.h, dq, rows, D, p.wq, qd, dh, false, g.wq, g.bq);
  kernels::linear_backward(pool, s.h, dk, rows, D, p.wk, kvd, dh, true, g.wk, g.bk);
  kernels::linear_backward(pool, s.h, dv, rows, D, p.wv, kvd, dh, true, g.wv, g.bv);
  norm_backward(ctx, p.norm, g.norm, s.x_in, dh, rows, s.mean, s.rstd, dx);
}

}  // namespace longctx::layers
