// Paged K/V rows: the one page-address formula, shared by the attention drivers (which read K/V
// in place) and the KV cache (kvcache/, which writes, copies and shifts rows).
//
// A page holds 2^page_shift consecutive positions of one K or V, head-major: each KV head's rows
// together, so a tile of one head's keys is one contiguous run. Head g of the row at position j
// starts at
//   pages[j >> page_shift] + g * head_stride + (j mod 2^page_shift) * row_bytes
// where row_bytes is one head's row (head_dim elements in the cache's element type) and
// head_stride = 2^page_shift * row_bytes.
#pragma once
#include <cstdint>

namespace longctx::attention {

template <class Byte>  // uint8_t or const uint8_t
inline Byte* paged_row(Byte* const* pages, int page_shift, int64_t head_stride, int64_t row_bytes, int64_t g,
                       int64_t j) {
  return pages[j >> page_shift] + g * head_stride + (j & ((int64_t{1} << page_shift) - 1)) * row_bytes;
}

}  // namespace longctx::attention
