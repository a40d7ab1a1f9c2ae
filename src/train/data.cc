#include "train/data.h"

#include <cstring>

#include "core/check.h"
#include "io/atomic_file.h"

namespace longctx::train {

CorpusSplit split_corpus(const std::string& text) {
  constexpr size_t kBlock = 16 * 1024;
  CorpusSplit s;
  for (size_t i = 0, b = 0; i < text.size(); i += kBlock, ++b) {
    (b % 20 == 19 ? s.val : s.train).append(text, i, kBlock);
  }
  return s;
}

Expected<std::string> read_corpus(const std::string& path) {
  auto text = io::read_file(path);
  if (!text.ok()) return text.status().Wrap("corpus");
  if (text->empty()) return Status::Error("corpus '" + path + "' is empty");
  return text;
}

TokenStream tokenize_stream(const tokenizer::BpeTokenizer& tok, const std::string& text) {
  TokenStream s;
  s.tokens = tok.encode(text);
  s.token_bytes.resize(s.tokens.size());
  for (size_t i = 0; i < s.tokens.size(); ++i)
    s.token_bytes[i] = static_cast<uint16_t>(std::min<size_t>(65535, tok.token_bytes(s.tokens[i]).size()));
  return s;
}

void Batcher::sample(Rng& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const {
  const int64_t n = static_cast<int64_t>(s_->tokens.size());
  CHECK(n > ctx_);
  inputs.resize(batch_ * ctx_);
  targets.resize(batch_ * ctx_);
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t o = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n - ctx_)));
    std::memcpy(&inputs[b * ctx_], &s_->tokens[o], ctx_ * sizeof(int32_t));
    std::memcpy(&targets[b * ctx_], &s_->tokens[o + 1], ctx_ * sizeof(int32_t));
  }
}

int64_t Batcher::sequential_batches() const {
  const int64_t windows = (static_cast<int64_t>(s_->tokens.size()) - 1) / ctx_;
  return windows / batch_;
}

bool Batcher::sequential(int64_t index, std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                         int64_t* target_bytes) const {
  if (index >= sequential_batches()) return false;
  inputs.resize(batch_ * ctx_);
  targets.resize(batch_ * ctx_);
  int64_t bytes = 0;
  for (int64_t b = 0; b < batch_; ++b) {
    const int64_t o = (index * batch_ + b) * ctx_;
    std::memcpy(&inputs[b * ctx_], &s_->tokens[o], ctx_ * sizeof(int32_t));
    std::memcpy(&targets[b * ctx_], &s_->tokens[o + 1], ctx_ * sizeof(int32_t));
    for (int64_t t = 0; t < ctx_; ++t) bytes += s_->token_bytes[o + 1 + t];
  }
  if (target_bytes) *target_bytes = bytes;
  return true;
}

}  // namespace longctx::train
