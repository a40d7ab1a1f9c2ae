// Training data: a text corpus split into train and held-out parts by a fixed rule, tokenized,
// and sampled into batches of windows [batch, ctx + 1] by a deterministic RNG.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/status.h"
#include "tokenizer/bpe.h"

namespace longctx::train {

// The split rule: the text is cut into 16 KiB blocks; every 20th block (index % 20 == 19) is
// held out, the rest is training data. Both parts keep their blocks in order.
struct CorpusSplit {
  std::string train, val;
};
CorpusSplit split_corpus(const std::string& text);

// Reads a corpus file: a clear error when missing, unreadable, a directory or empty.
Expected<std::string> read_corpus(const std::string& path);

struct TokenStream {
  std::vector<int32_t> tokens;
  std::vector<uint16_t> token_bytes;  // bytes of each token (for bits per byte)
};
TokenStream tokenize_stream(const tokenizer::BpeTokenizer& tok, const std::string& text);

class Batcher {
 public:
  Batcher(const TokenStream* stream, int64_t batch, int64_t ctx) : s_(stream), batch_(batch), ctx_(ctx) {}
  // Random windows: inputs[b, t] = tokens[o_b + t], targets[b, t] = tokens[o_b + t + 1].
  void sample(Rng& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;
  // The i-th consecutive non-overlapping window set (held-out evaluation); returns the number of
  // target bytes covered. False when past the end.
  bool sequential(int64_t index, std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                  int64_t* target_bytes) const;
  int64_t sequential_batches() const;

 private:
  const TokenStream* s_;
  int64_t batch_, ctx_;
};

}  // namespace longctx::train
