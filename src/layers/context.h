// What every block's forward/backward needs besides its weights: the model-wide settings, the
// thread pool, the activation arena and the RoPE tables.
#pragma once
#include "core/arena.h"
#include "core/thread_pool.h"
#include "layers/settings.h"
#include "position/rope.h"

namespace longctx::layers {

struct LayerContext {
  const Settings* settings = nullptr;
  ThreadPool* pool = nullptr;
  Arena* arena = nullptr;
  const position::Rope* rope = nullptr;  // set when settings->pos == kRope
};

}  // namespace longctx::layers
