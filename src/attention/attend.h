// Causal scaled dot-product attention over head groups (MHA / GQA / MQA), forward and backward.
//
// Shapes (row-major; a "row" is one token):
//   q, dq    [batch, seq_len, heads * head_dim]          row stride q_stride
//   k, v     [batch, kv_len, kv_heads * head_dim]        row stride kv_stride, batch stride kv_batch_stride
//   out, dout[batch, seq_len, heads * head_dim]          row stride q_stride
//   probs    [batch, heads, seq_len, kv_len]              saved softmax (training only)
// Query row t sits at position q_pos0 + t and sees keys 0 .. q_pos0 + t (causal), so the same
// call serves training (q_pos0 = 0, kv_len = seq_len), chunked prefill and decoding over a cache.
// Query head h reads key/value head h / (heads / kv_heads): K/V are never expanded to `heads`.
// ALiBi, when slopes are given, adds -slope[h] * (q_pos - k_pos) to each score before softmax.
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace longctx::attention {

struct AttentionDims {
  int64_t batch = 1, seq_len = 0, kv_len = 0, q_pos0 = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int64_t q_stride = 0, kv_stride = 0, kv_batch_stride = 0;
};

void attend_forward(ThreadPool& pool, const AttentionDims& d, const float* q, const float* k,
                    const float* v, const float* alibi_slopes, float* out, float* probs);

// dq is overwritten; dk and dv are accumulated (callers zero them), all with the forward's strides.
void attend_backward(ThreadPool& pool, const AttentionDims& d, const float* q, const float* k,
                     const float* v, const float* probs, const float* dout, float* dq, float* dk,
                     float* dv);

}  // namespace longctx::attention
