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

// One layer's K and V cache rows of one sequence, in pages of 2^page_shift positions: row p of K
// is at k_pages[p >> page_shift] + (p & (2^page_shift - 1)) * k_row_bytes (V likewise), each row
// kv_heads * head_dim elements in ggml type k_type / v_type (fp32, fp16 or Q8_0). Pages before
// first_row may be gone (null): the attention never reads keys before it.
struct KvStore {
  uint8_t* const* k_pages = nullptr;
  uint8_t* const* v_pages = nullptr;
  int page_shift = 0;
  int64_t k_row_bytes = 0, v_row_bytes = 0;
  int64_t capacity = 0, first_row = 0;
  uint32_t k_type = 0, v_type = 0;
};

}  // namespace longctx::layers
