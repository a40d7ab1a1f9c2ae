// Training data: a text corpus split into train and held-out parts by a fixed rule, tokenized,
// and sampled into batches of windows [batch, ctx + 1] by a deterministic RNG.
#pragma once
#include <cstdint>
#include <functional>
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
  // Chat data (supervised fine-tuning): 1 where the token is a target the loss counts (the
  // assistant's turns), 0 elsewhere; empty: every token counts.
  std::vector<uint8_t> trained;
  // Chat data: where each conversation starts (training windows start there).
  std::vector<int64_t> starts;
  bool counts(int64_t i) const { return trained.empty() || trained[i]; }
};
TokenStream tokenize_stream(const tokenizer::BpeTokenizer& tok, const std::string& text);

// Supervised fine-tuning data: one conversation per line of a JSON Lines file,
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
// rendered with the model's chat template and tokenized with its special tokens; the loss
// counts only the assistant's turns (their content and the text that ends the turn). Every
// 20th conversation (index % 20 == 19) is held out. `render(messages, add_generation_prompt)`
// is the template (infer::ChatTemplate::render).
struct ChatTurn {
  std::string role, content;
};
using RenderChat = std::function<std::string(const std::vector<ChatTurn>&, bool)>;
struct ChatData {
  TokenStream train, val;
  int64_t conversations = 0, assistant_tokens = 0;
};
// Errors name the file and line: not JSON, no "messages" array, a message without a role or
// content, an unknown role, a conversation without an assistant turn; fewer than 20
// conversations (nothing held out).
Expected<ChatData> read_chat_jsonl(const std::string& path, const tokenizer::BpeTokenizer& tok, const RenderChat& render);

class Batcher {
 public:
  Batcher(const TokenStream* stream, int64_t batch, int64_t ctx) : s_(stream), batch_(batch), ctx_(ctx) {}
  // Random windows: inputs[b, t] = tokens[o_b + t], targets[b, t] = tokens[o_b + t + 1] (-1 where
  // the target does not count). Chat data: windows start at a conversation's start.
  void sample(Rng& rng, std::vector<int32_t>& inputs, std::vector<int32_t>& targets) const;
  // The i-th consecutive non-overlapping window set (held-out evaluation); returns the number of
  // target bytes covered (of the targets that count). False when past the end.
  bool sequential(int64_t index, std::vector<int32_t>& inputs, std::vector<int32_t>& targets,
                  int64_t* target_bytes) const;
  int64_t sequential_batches() const;

 private:
  const TokenStream* s_;
  int64_t batch_, ctx_;
};

}  // namespace longctx::train
