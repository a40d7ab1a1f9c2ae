// Scaled dot-product attention over head groups (MHA / GQA / MQA) under a pattern, forward and
// backward: the one attention engine of the project (tiled.cc). reference.h holds its
// materialised-score twin for tests and benchmarks.
//
// Shapes (row-major; a "row" is one token):
//   q, dq, out, dout  [batch, seq_len, heads * head_dim]      row stride q_stride
//   k, v, dk, dv      [batch, kv_len, kv_heads * head_dim]    row stride kv_stride,
//                                                               batch stride kv_batch_stride
//   lse               [batch, heads, seq_len]                  log-sum-exp of each query's scores
// Query row t sits at position q_pos0 + t; key row j at position j. So one call serves training
// (q_pos0 = 0, kv_len = seq_len), chunked prefill and decoding over a cache (q_pos0 > 0).
// Query head h reads key/value head h / (heads / kv_heads): K/V are never expanded to `heads`.
// Score(q, k) = scale * q.k - slope[h] * (q_pos - k_pos) (the ALiBi term when slopes are given);
// keys the pattern hides get exactly zero weight. A query that sees no key outputs zeros
// (lse = -inf).
#pragma once
#include <cstdint>

#include "attention/paged.h"
#include "attention/pattern.h"
#include "core/thread_pool.h"

namespace longctx::attention {

struct AttentionDims {
  int64_t batch = 1, seq_len = 0, kv_len = 0, q_pos0 = 0;
  int heads = 0, kv_heads = 0, head_dim = 0;
  int64_t q_stride = 0, kv_stride = 0, kv_batch_stride = 0;
  // Keys before kv_first are gone (a cache gave them back): never visited, as if masked.
  int64_t kv_first = 0;
  // Gathered rows (CoLT5's heavy attention over routed tokens): query row t sits at position
  // q_pos[t] and key row j at k_pos[j] (both ascending, the same for every batch entry) instead
  // of q_pos0 + t and j. Causal and Full patterns only: under Causal, key j is visible to query t
  // iff k_pos[j] <= q_pos[t]. ALiBi's distance is q_pos[t] - k_pos[j]. Both set or both null.
  const int64_t* q_pos = nullptr;
  const int64_t* k_pos = nullptr;
};

struct AttentionSpec {
  const MaskView* mask = nullptr;      // required; its kv_len must equal dims.kv_len
  const float* alibi_slopes = nullptr;  // [heads] or null
  float scale = 0.0f;                   // 0: 1 / sqrt(head_dim)
};

// Tile sizes of the tiled driver; 0 picks the defaults (see tiled.cc for how they were chosen).
struct TileSizes {
  int64_t query_rows = 0;  // query rows per tile, summed over the heads of a group
  int64_t key_cols = 0;    // keys per tile
  // Forward only: every query position is its own block and the split of its key tiles follows
  // the rule of a decoding step, so a row's output has the same bits whatever call computes it
  // (a decoding step, a prompt chunk of any length starting anywhere, beside any other rows).
  // Serving needs it: a prefix computed by one request and adopted by another, or a sequence
  // recomputed after preemption, then equals what a run alone computes. It costs the sgemm
  // tiles of tall query blocks (the in-place kernels of decoding run instead).
  bool row_invariant = false;
  // The tiles' fp32 matrix products (scores, P V and the backward's four) in bf16 with fp32 sums
  // (kernels::gemm_bf16_serial); the softmax, its statistics and every accumulation stay fp32.
  // Set only where kernels::gemm_bf16_supported(). Decoding kernels over a cache ignore it.
  bool bf16 = false;
  // The tiles' fp32 products on kernels::tile_gemm_serial (AVX-512 registers, operands not
  // packed) instead of OpenBLAS, where the CPU has AVX-512F. Set by passes without a KV cache
  // (training, encoders) and the benchmark. Passes through a cache keep OpenBLAS: on CPUs without
  // AMX a prompt's rows already round differently from the decode's, and the greedy answers that
  // must agree across those paths (attribution on and off, a sequence recomputed after
  // preemption) agree with OpenBLAS's rounding but flipped a near-tie with this kernel's.
  // Such passes also take the softmax's exp through kernels::vec_exp_sum_nonpositive.
  bool fp32_kernels = false;
};

// K or V of the forward in a cache's element type (ggml ids: 0 fp32, 1 fp16, 8 Q8_0), read in
// place by the decoding kernels (kernels/kv_tile.h) or converted to fp32 a tile at a time.
//   contiguous (pages null): row j of batch b at data + (b * kv_batch_stride + j * kv_stride)
//     elements (fp32 or fp16);
//   paged (batch 1, a KV cache, head-major pages): head g of row j at paged_row(pages,
//     page_shift, head_stride, row_bytes, g, j) (attention/paged.h). Key tiles never straddle a
//     page, so a tile of one head is one contiguous run.
struct KvView {
  const void* data = nullptr;
  uint32_t type = 0;
  const uint8_t* const* pages = nullptr;
  int page_shift = 0;
  int64_t row_bytes = 0, head_stride = 0;
};
void tiled_forward_kv(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q, KvView k,
                      KvView v, float* out, float* lse, TileSizes tiles = {});

// out and lse (if not null) are overwritten.
void tiled_forward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                   const float* k, const float* v, float* out, float* lse, TileSizes tiles = {});

// Needs the forward's out and lse. dq is overwritten; dk and dv are accumulated (callers zero
// them).
void tiled_backward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                    const float* k, const float* v, const float* out, const float* lse, const float* dout,
                    float* dq, float* dk, float* dv, TileSizes tiles = {});

}  // namespace longctx::attention
