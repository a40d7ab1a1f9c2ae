// Token sampling from logits: repetition penalty, temperature, top-k, top-p (nucleus), min-p,
// then a draw from the deterministic RNG. Temperature 0 is greedy (argmax).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/rng.h"
#include "core/status.h"

namespace longctx::infer {

struct SamplerOptions {
  float temp = 0.8f;
  int top_k = 40;            // 0 = off
  float top_p = 0.95f;       // 1 = off
  float min_p = 0.0f;        // 0 = off: drop tokens below min_p * p(best)
  float repeat_penalty = 1.0f;  // 1 = off (llama.cpp's rule: divide positive logits, multiply negative)
  int repeat_last_n = 64;
  uint64_t seed = 1;
  Status validate() const;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions opt) : opt_(opt), rng_(opt.seed) {}
  // logits [vocab] is modified in place; history: tokens so far (prompt and output).
  int32_t sample(float* logits, int64_t vocab, std::span<const int32_t> history);

 private:
  SamplerOptions opt_;
  Rng rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

}  // namespace longctx::infer
