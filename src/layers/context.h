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

// Per-sequence K/V storage a layer writes its new keys/values into and attends over.
// k, v: [capacity, kv_heads * head_dim] with row stride `stride` (the KV cache of one layer).
// One layer's K and V cache rows: [capacity, stride] elements each, fp32 or fp16 (ggml type
// ids 0 / 1, per tensor: --cache-type-k / --cache-type-v).
struct KvStore {
  void* k = nullptr;
  void* v = nullptr;
  int64_t stride = 0;  // elements per row
  int64_t capacity = 0;
  uint32_t k_type = 0, v_type = 0;
};

}  // namespace longctx::layers
