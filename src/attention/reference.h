// Reference attention: the dense scores of one (batch, head) materialised in double, softmax and
// products accumulated in double, the mask asked key by key. Slow and O(seq_len * kv_len) memory:
// it is the truth the tiled driver is tested against and the baseline `bench attention` shows.
// Same shapes and conventions as attention.h.
#pragma once
#include "attention/attention.h"

namespace longctx::attention {

void reference_forward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                       const float* k, const float* v, float* out, float* lse);

// dq is overwritten; dk and dv are accumulated. Recomputes the forward itself.
void reference_backward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                        const float* k, const float* v, const float* dout, float* dq, float* dk, float* dv);

}  // namespace longctx::attention
