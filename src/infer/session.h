// Session: KV-cached incremental decoding of one sequence. Prompts are prefilled in passes of
// --ubatch tokens, then each new token is one forward over the cache. The cache of the whole
// context is allocated on first use, after checking its memory plan against available memory.
// The cache outlives a call: set_tokens keeps the longest prefix it already holds (a chat's
// history is not recomputed every turn). When generation fills the context it stops with an
// error, or with context shift on keeps the first `keep` tokens, drops the older half of the
// rest (model::Model::shift_cache) and goes on. keep_prefix sets a computed prefix aside (a
// fork of the cache): requests that start with it, one after another, each go on from a fork
// of it rather than computing it again.
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
  int64_t prompt_tokens = 0, reused_tokens = 0, generated = 0;
  double prefill_s = 0, decode_s = 0;
  bool stopped_at_eos = false;  // stopped at EOS or another stop token
};

class Session {
 public:
  Session(model::Model& model, const tokenizer::BpeTokenizer& tok, ThreadPool& pool);

  // Encodes the prompt (after BOS when the tokenizer asks for one), then samples up to n
  // tokens, calling on_text with each token's bytes. Stops at EOS. Error when the prompt does
  // not fit the context.
  Expected<GenerateStats> generate(const std::string& prompt, int64_t n, const SamplerOptions& sampling,
                                   const std::function<void(const std::string&)>& on_text);

  // Makes the cache hold exactly `tokens`, computing only what differs from what it holds;
  // afterwards the next-token logits are those after the last token. Fills prefill stats.
  Status set_tokens(const std::vector<int32_t>& tokens, GenerateStats* stats);
  // Samples up to n tokens after the current ones; stops (without emitting it) at EOS or at any
  // id in `stop`. Error when the context is full and context shift is off (what was generated
  // so far has been emitted).
  Status continue_tokens(int64_t n, Sampler& sampler, const std::vector<int32_t>& stop,
                       const std::function<void(int32_t)>& on_token, GenerateStats* stats);
  // Computes `prefix` (through the current cache, reusing what it holds) and keeps its pages
  // aside: a later set_tokens or generate whose tokens start with part of it forks those
  // positions (pages shared, copied on write) when that reuses more than the current cache,
  // whatever ran in between. Several requests behind one system prompt pay for it once. The
  // pool grows by the prefix's pages (in the memory check too); a new call replaces the prefix.
  Status keep_prefix(const std::vector<int32_t>& prefix, GenerateStats* stats);
  const std::vector<int32_t>& kept_prefix() const { return kept_tokens_; }
  // Tokenizes a prompt as generate does (BOS first when the tokenizer asks for one).
  std::vector<int32_t> encode_prompt(const std::string& prompt) const;
  const std::vector<int32_t>& tokens() const { return tokens_; }
  // The next-token logits after tokens() (after set_tokens, or the last token generated).
  const std::vector<float>& logits() const { return logits_; }
  // Attention attribution (attention/attribution.h): while on, the rows that produce tokens (the
  // last row of set_tokens, each generated token fed back) add the attention every position
  // receives, summed over heads and layers, to attribution()[position]. Turning it on clears it.
  void set_attribution(bool on);
  const std::vector<double>& attribution() const { return attribution_; }
  int64_t attributed_rows() const { return attributed_rows_; }
  // Prompts are prefilled in passes of at most this many tokens (--ubatch; default 512): the
  // activation scratch is sized by it, not by the prompt.
  void set_ubatch(int64_t n) { ubatch_ = n > 0 ? n : 512; }
  // Element types of the K and V cache (ggml ids: 0 fp32, 1 fp16, 8 q8_0) and its page size
  // (a power of two); before the first call.
  void set_cache_types(uint32_t k, uint32_t v, int64_t page_rows = kvcache::kDefaultPageRows) {
    k_type_ = k, v_type_ = v, page_rows_ = page_rows;
  }
  // --context-shift --keep N.
  void set_context_shift(bool on, int64_t keep) { shift_ = on, keep_ = keep; }
  int64_t shifts() const { return shifts_; }
  const kvcache::KvCache& cache() const { return cache_; }
  void reset() {
    tokens_.clear();
    computed_ = 0;
  }

 private:
  model::Model& model_;
  const tokenizer::BpeTokenizer& tok_;
  ThreadPool& pool_;
  Arena arena_;
  kvcache::KvCache cache_;
  std::vector<int32_t> tokens_;  // what the cache holds
  kvcache::KvCache kept_;          // keep_prefix's fork, on cache_'s pool
  std::vector<int32_t> kept_tokens_;
  int64_t extra_blocks_ = 0;  // blocks the pool holds beyond one sequence of the whole context
  bool attributing_ = false;
  std::vector<double> attribution_;
  int64_t attributed_rows_ = 0;
  int64_t computed_ = 0;         // leading tokens_ whose keys the cache holds
  std::vector<float> logits_;    // after tokens_.back()
  int64_t ubatch_ = 512;
  uint32_t k_type_ = 0, v_type_ = 0;
  int64_t page_rows_ = kvcache::kDefaultPageRows;
  bool shift_ = false;
  int64_t keep_ = 0, shifts_ = 0;
  // Makes room for one more token by a context shift (error when off).
  Status make_room();
  // A cache of the whole context whose pool has at least `extra_blocks` spare blocks, after the
  // memory check; a new one (dropping what was held) when the current one is smaller.
  Status ensure_cache(int64_t extra_blocks);
};

}  // namespace longctx::infer
