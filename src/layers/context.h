// What every layer's forward/backward needs besides its weights: the settings shared by the
// model, the thread pool and the activation arena.
#pragma once
#include <vector>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/config.h"
#include "position/rope.h"

namespace longctx::layers {

struct LayerContext {
  const model::ModelConfig* config = nullptr;
  ThreadPool* pool = nullptr;
  Arena* arena = nullptr;
  const position::Rope* rope = nullptr;  // set when config->pos == kRope
};

// One layer's K and V cache of one sequence, in pages of 2^page_shift positions. A page holds
// each KV head's rows together (head-major), so a tile of one head's keys is one contiguous run:
// head g of the K row at position p is at
//   k_pages[p >> page_shift] + g * k_head_stride + (p mod 2^page_shift) * k_row_bytes
// (V likewise), head_dim elements in ggml type k_type / v_type (fp32, fp16 or Q8_0);
// k_head_stride = 2^page_shift * k_row_bytes. Pages before first_row may be gone (null): the
// attention never reads keys before it.
struct KvStore {
  uint8_t* const* k_pages = nullptr;
  uint8_t* const* v_pages = nullptr;
  int page_shift = 0;
  int64_t k_row_bytes = 0, v_row_bytes = 0;  // one head's row
  int64_t k_head_stride = 0, v_head_stride = 0;
  int64_t capacity = 0, first_row = 0;
  uint32_t k_type = 0, v_type = 0;
};

}  // namespace longctx::layers
