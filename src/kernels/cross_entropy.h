// Softmax cross-entropy over the vocabulary, fused with its gradient.
// logits [rows, vocab]; targets [rows] (a negative target marks a row to ignore).
#pragma once
#include <cstdint>

#include "core/thread_pool.h"

namespace longctx::kernels {

// Returns the sum over rows of -log softmax(logits)[target] (in double, summed in row order).
// When dlogits is non-null it receives grad_scale * (softmax - onehot) per row (it may alias
// logits, which is then overwritten). Ignored rows get a zero gradient.
double cross_entropy(ThreadPool& pool, float* logits, const int32_t* targets, int64_t rows,
                     int64_t vocab, float* dlogits, float grad_scale);

}  // namespace longctx::kernels
