// Session: KV-cached incremental decoding of one sequence. The prompt is prefilled in one pass,
// then each new token is one forward over the cache.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "infer/sampler.h"
#include "model/model.h"
#include "tokenizer/bpe.h"

namespace longctx::infer {

struct GenerateStats {
  int64_t prompt_tokens = 0, generated = 0;
  double prefill_s = 0, decode_s = 0;
  bool stopped_at_eos = false;
};

class Session {
 public:
  Session(model::Model& model, const tokenizer::BpeTokenizer& tok, ThreadPool& pool);
  // Encodes the prompt (after a BOS token), then samples up to n tokens, calling on_text with
  // each token's bytes as it comes. Stops at EOS. Error when the prompt does not fit the context.
  Expected<GenerateStats> generate(const std::string& prompt, int64_t n, const SamplerOptions& sampling,
                                   const std::function<void(const std::string&)>& on_text);

 private:
  model::Model& model_;
  const tokenizer::BpeTokenizer& tok_;
  ThreadPool& pool_;
  Arena arena_;
};

}  // namespace longctx::infer
