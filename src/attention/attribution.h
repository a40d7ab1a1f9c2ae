// Attention attribution: how much attention each key receives, summed over query rows and heads,
// without the score matrix. After a forward that produced each query's log-sum-exp (lse), a
// second pass recomputes the scores a tile of keys at a time (the same kernels as decoding, K read
// in place in the cache's type) and adds exp(score - lse) to the key's total: one float per key is
// all it keeps. What `--attribution` on generate, chat and ask sums over layers and generated
// tokens (infer::Attribution).
#pragma once
#include <cstdint>

#include "attention/attention.h"

namespace longctx::attention {

// mass[j] += sum over query rows t and heads h of P(t, h, j), the weight query t of head h gives
// key j (exactly 0 for keys the mask hides or before d.kv_first). lse: [batch = 1, heads,
// seq_len] from the forward of the same call. batch must be 1. Threads split the keys, so mass
// needs no lock; the sum over rows and heads of a key is in a fixed order.
void attention_mass(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q, KvView k,
                    const float* lse, double* mass);

}  // namespace longctx::attention
