#include "kvcache/kv_store.h"

#include <cstring>

#include "core/check.h"
#include "quant/formats.h"
#include "quant/fp16.h"

namespace longctx::kvcache {
namespace {

void encode_rows(uint8_t* const* pages, int page_shift, int64_t row_bytes, int64_t head_stride, uint32_t type,
                 int64_t pos0, int64_t n, int kv_heads, int64_t head_dim, const float* src) {
  const int64_t kvd = kv_heads * head_dim;
  for (int64_t t = 0; t < n; ++t)
    for (int g = 0; g < kv_heads; ++g) {
      uint8_t* dst = attention::paged_row(pages, page_shift, head_stride, row_bytes, g, pos0 + t);
      const float* x = src + t * kvd + g * head_dim;
      if (type == kF32)
        std::memcpy(dst, x, head_dim * sizeof(float));
      else if (type == kF16)
        quant::fp32_to_fp16_row(x, reinterpret_cast<uint16_t*>(dst), head_dim);
      else
        CHECK(quant::quantize_row(type, x, dst, head_dim).ok());  // a cache type (make_geometry checked it)
    }
}

}  // namespace

void write_rows(const KvStore& s, int64_t pos0, int64_t n, int kv_heads, int64_t head_dim, const float* k,
                const float* v) {
  CHECK(pos0 >= 0 && pos0 + n <= s.capacity);
  encode_rows(s.k_pages, s.page_shift, s.k_row_bytes, s.k_head_stride, s.k_type, pos0, n, kv_heads, head_dim, k);
  encode_rows(s.v_pages, s.page_shift, s.v_row_bytes, s.v_head_stride, s.v_type, pos0, n, kv_heads, head_dim, v);
}

}  // namespace longctx::kvcache
