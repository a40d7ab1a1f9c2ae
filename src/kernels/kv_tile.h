// Attention decoding over a KV cache, one tile of keys at a time, reading K and V rows in place
// in the cache's element type: no fp32 copy of the tile is made. For the R query rows that share
// one KV head (R = 1 for MHA, heads / kv_heads under GQA, times the rows of a chunked prefill):
//   kv_scores      S = Q K^T  (raw dot products: the caller scales, masks and takes the softmax)
//   kv_accumulate  O += P V
// SIMD with run-time dispatch (Highway; cpu/kv_tile.cc), single-threaded: callers split heads
// and tiles over the pool. tests/kernels/kv_tile_test.cc checks both against a scalar twin.
//
// Element types of a row (ggml type ids, core/element_type.h; block layouts in quant/formats.h):
//   0 fp32;  1 fp16 (IEEE half, converted exactly as quant::fp16_to_fp32, Inf/NaN included);
//   8 Q8_0: blocks of 32 elements, an fp16 scale d then 32 int8 qs (34 bytes); x = d * qs, which
//           is exact in fp32 (11 by 8 significant bits), so a Q8_0 row gives the same products
//           as the fp32 row of its dequantized values.
// Rows need no alignment; row_bytes (the distance between rows) may exceed a row's bytes.
#pragma once
#include <cstdint>

namespace longctx::kernels {

// Bytes of a row of n elements: n * 4, n * 2 or n / 32 * 34; -1 for a type these kernels do not
// take, or Q8_0 with n % 32 != 0.
int64_t kv_row_bytes(uint32_t type, int64_t n);

// Bytes a kernel asks the memory system for while it works (software prefetch), a few cache
// lines per key, spread evenly over its keys: the caller names what it reads next (the tile's V
// rows while its scores are computed, the next tile's K rows while its values are summed). A
// decode step is a stream through the whole cache, and these requests keep more misses in
// flight than the hardware prefetcher does alone. A hint only: the range is never read, and
// results do not depend on it.
struct Prefetch {
  const void* data = nullptr;
  int64_t bytes = 0;
};

// s[r * ld_s + j] = dot(q + r * hd, key_j)   for r < R, j < cols,
// key_j = the hd elements of the row at (const uint8_t*)k + j * row_bytes, in `type`.
// Overwrites s; R, cols >= 0, hd >= 1 (a multiple of 32 for Q8_0), ld_s >= cols.
void kv_scores(uint32_t type, const void* k, int64_t row_bytes, int64_t cols, const float* q, int64_t R,
               int64_t hd, float* s, int64_t ld_s, Prefetch next = {});

// acc[r * hd + i] += sum_j p[r * ld_p + j] * value_j[i]   for r < R, i < hd,
// value_j = the row at (const uint8_t*)v + j * row_bytes, in `type`. ld_p >= cols.
void kv_accumulate(uint32_t type, const void* v, int64_t row_bytes, int64_t cols, const float* p, int64_t ld_p,
                   int64_t R, int64_t hd, float* acc, Prefetch next = {});

// The most consecutive query positions (a power of two, 1 at least) whose `group` rows each,
// stacked (R = positions * group <= max_rows), each get from kv_scores and kv_accumulate
// exactly the arithmetic a lone position's `group` rows get: the attention's row-invariant
// query blocks (attention::TileSizes::row_invariant).
int64_t kv_invariant_positions(int64_t group, int64_t hd, int64_t max_rows);

}  // namespace longctx::kernels
