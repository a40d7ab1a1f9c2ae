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
struct KvStore {
  float* k = nullptr;
  float* v = nullptr;
  int64_t stride = 0;
  int64_t capacity = 0;
};

}  // namespace longctx::layers
