// Reading attention attribution (infer::Session::set_attribution) back onto the text: where each
// token of a prompt starts in the text it came from, and the share of the attention mass the
// tokens of each byte span of that text received.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/bpe.h"

namespace longctx::infer {

// Byte offset of each token's start in the concatenation of the tokens' texts (control tokens
// as their own text): the rendered prompt, for byte-level vocabularies. `text`, when given,
// receives that concatenation.
std::vector<int64_t> token_offsets(const tokenizer::BpeTokenizer& tok, const std::vector<int32_t>& ids,
                                   std::string* text = nullptr);

struct ByteSpan {
  int64_t begin = 0, end = 0;  // [begin, end) in the prompt's text
};
// For each span, the share of the total mass (over every position, answer included) that the
// prompt tokens starting inside it received.
std::vector<double> span_shares(const std::vector<double>& mass, const std::vector<int64_t>& offsets,
                                const std::vector<ByteSpan>& spans);

// The [begin, end) byte spans of text's lines (without their newline; empty lines skipped).
std::vector<ByteSpan> line_spans(const std::string& text);

struct LineShare {
  int64_t line = 0;  // 1-based, in the text the prompt's tokens spell
  double share = 0;
  std::string text;
};
// The prompt's lines (the text its tokens spell) ordered by their share of `mass`, at most `top`.
std::vector<LineShare> top_line_shares(const tokenizer::BpeTokenizer& tok, const std::vector<int32_t>& prompt,
                                       const std::vector<double>& mass, size_t top);

}  // namespace longctx::infer
