// Perplexity against evaluation length on held-out text.
//
// Windows of `length` tokens over a token stream, each predicting its next tokens:
//   non-overlapping (stride 0): window i covers tokens [i*L, i*L + L] and scores all L targets;
//   sliding (0 < stride < L): windows start every `stride` tokens; the first scores all L
//     targets, the others only their last `stride` (each scored token sees >= L - stride tokens
//     of context) -- the two settings of the ALiBi paper.
// Loss is nats per scored token; perplexity exp(loss); bits per byte = total nats / ln 2 / bytes
// of the scored tokens.
#pragma once
#include <cstdint>
#include <functional>

#include "core/status.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "train/data.h"

namespace longctx::eval {

struct LengthResult {
  int64_t length = 0, stride = 0;
  int64_t windows = 0, scored_tokens = 0, scored_bytes = 0;
  double loss = 0;  // nats per scored token
  double ppl = 0;
  double bpb = 0;
  double seconds = 0;
};

struct EvalOptions {
  int64_t stride = 0;      // 0: non-overlapping windows
  int64_t max_tokens = 0;  // score at most about this many tokens (0: the whole stream)
  // Windows longer than this run through a KV cache in passes of `ubatch` tokens (logits and
  // scratch for ubatch rows only); shorter ones in batches of whole windows. 0: never cached.
  int64_t ubatch = 0;
  uint32_t k_type = 0, v_type = 0;  // the cache's element types
};

// progress(windows done, windows total) is called after each batch of windows.
// The model must accept `length` positions (see Model::with_config).
Expected<LengthResult> evaluate_length(model::Model& model, ThreadPool& pool, const train::TokenStream& stream,
                                       int64_t length, const EvalOptions& opt,
                                       const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace longctx::eval
