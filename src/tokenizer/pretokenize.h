// Pre-tokenizer: splits raw bytes into the pieces that BPE merges stay inside (a merge never
// crosses a piece boundary). Used by both BpeTokenizer::train and BpeTokenizer::encode.
//
// The rule is GPT-2's pattern
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// evaluated over bytes instead of Unicode code points, with these byte classes:
//   letter:     A-Z, a-z, and every byte >= 0x80 (so UTF-8 words, and invalid UTF-8, stay in
//               one piece with the ASCII letters around them; no code point is ever split);
//   digit:      0-9;
//   whitespace: ' ', '\t', '\n', '\v', '\f', '\r';
//   other:      everything else (punctuation, NUL and the other control bytes, including '\'').
// At each position the first alternative that matches wins, and each run is greedy:
//   1. a lowercase English contraction: 's 't 're 've 'm 'll 'd;
//   2. an optional single ' ' followed by a run of letters;
//   3. an optional single ' ' followed by a run of digits;
//   4. an optional single ' ' followed by a run of "other" bytes;
//   5. a run of whitespace. If the run is followed by a non-whitespace byte and is longer than
//      one byte, its last byte is left for the next piece (GPT-2's \s+(?!\S)), so " world" keeps
//      its space; a lone whitespace byte before a non-space (e.g. "\n" before "Hello") is its own
//      piece.
// Example: "Hello world's  end\n\n" -> "Hello" " world" "'s" " " " end" "\n\n".
// Every byte belongs to exactly one piece, so concatenating the pieces gives back the input.
#pragma once
#include <cstddef>
#include <string_view>
#include <vector>

namespace longctx::tokenizer {

// Returns the end (exclusive) of the piece that starts at `begin`. Requires begin < text.size();
// the result is always > begin.
size_t piece_end(std::string_view text, size_t begin);

// Calls fn(std::string_view piece) for every piece of `text`, in order, without allocating.
template <typename Fn>
void for_each_piece(std::string_view text, Fn&& fn) {
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = piece_end(text, pos);
    fn(text.substr(pos, end - pos));
    pos = end;
  }
}

// All pieces of `text` (views into it), in order.
std::vector<std::string_view> pretokenize(std::string_view text);

}  // namespace longctx::tokenizer
