// KvStore: one cache slot's K and V of one sequence as the attention reads and writes them: page
// tables in the layout of attention/paged.h, in the cache's element types (ggml ids: fp32, fp16
// or Q8_0). Pages before first_row may be gone (null): the attention never reads keys before it.
#pragma once
#include <cstdint>
#include <vector>

#include "attention/attention.h"

namespace longctx::kvcache {

struct KvStore {
  uint8_t* const* k_pages = nullptr;
  uint8_t* const* v_pages = nullptr;
  int page_shift = 0;
  int64_t k_row_bytes = 0, v_row_bytes = 0;  // one head's row
  int64_t k_head_stride = 0, v_head_stride = 0;
  int64_t capacity = 0, first_row = 0;
  uint32_t k_type = 0, v_type = 0;
  // A compact slot (KvSlot::compact): the positions of its rows, row r at (*positions)[r]; the
  // block appends the rows it writes (pages for them held: KvCache::prepare). Null otherwise.
  std::vector<int64_t>* positions = nullptr;

  attention::KvView k_view() const { return {nullptr, k_type, k_pages, page_shift, k_row_bytes, k_head_stride}; }
  attention::KvView v_view() const { return {nullptr, v_type, v_pages, page_shift, v_row_bytes, v_head_stride}; }
};

// Writes the rows of positions [pos0, pos0 + n) into their pages (held: KvCache::prepare),
// head by head, encoded in the store's element types: fp32 as is, fp16 rounded to nearest
// even, Q8_0 by ggml's reference quantizer. k, v: [n, kv_heads * head_dim] fp32.
void write_rows(const KvStore& s, int64_t pos0, int64_t n, int kv_heads, int64_t head_dim, const float* k,
                const float* v);

}  // namespace longctx::kvcache
