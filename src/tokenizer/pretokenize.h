// Pre-tokenizers: split raw bytes into the pieces that BPE merges stay inside (a merge never
// crosses a piece boundary). Two kinds:
//   - our own "longctx" splitter below (piece_end / for_each_piece), used by BpeTokenizer::train
//     and by every tokenizer we train;
//   - PreTokenizer::by_name, the regex pre-tokenizers of real models, chosen by the GGUF key
//     tokenizer.ggml.pre (see the end of this file and pretokenize_regex.cc).
//
// The "longctx" rule is GPT-2's pattern
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
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

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

// A pre-tokenizer chosen by name (GGUF tokenizer.ggml.pre), as llama.cpp and Hugging Face
// `tokenizers` define it: "longctx" is the byte-class splitter above; the others are a list of
// regular expressions (PCRE2, UTF-8, Unicode properties) applied in turn, each one splitting every
// piece the previous ones made into its matches and the gaps between them (HF's Split with the
// Isolated behaviour, llama.cpp's unicode_regex_split). names() lists the accepted names.
//
// Unicode: \p{L} and \p{N} come from PCRE2's tables (Debian's 10.42: Unicode 14), so characters
// assigned later (Unicode 15/16, e.g. U+1C89, CJK extension I) are "other" here but letters or
// digits in HF. \s is taken as Unicode White_Space (what HF's Oniguruma does; PCRE2's own \s
// also matches U+180E). Invalid UTF-8 never matches a pattern item, so those bytes end up in the
// gaps, which are pieces too: every byte belongs to exactly one piece for any input.
// Copies share the compiled patterns; split() is const and thread-safe.
class PreTokenizer {
 public:
  PreTokenizer() = default;  // "longctx"
  // Errors: an unknown name (the message lists the known ones).
  static Expected<PreTokenizer> by_name(std::string_view name);
  static std::vector<std::string> names();
  // What by_name(name) uses, without compiling it: the regex list, in order and as written in
  // pretokenize_regex.cc (empty for "longctx"), and its ignore_merges(). Errors: an unknown name.
  struct Definition {
    std::vector<std::string> patterns;
    bool ignore_merges = false;
  };
  static Expected<Definition> definition(std::string_view name);

  const std::string& name() const { return name_; }
  // Whether a piece that is itself a vocabulary token skips the merges (HF BPE's ignore_merges).
  // GGUF has no key for it: llama.cpp ties it to the Llama-3 names, and so do we.
  bool ignore_merges() const { return ignore_merges_; }
  // Calls fn(piece) for every piece of `text`, in order; the pieces concatenate to `text`.
  void split(std::string_view text, const std::function<void(std::string_view)>& fn) const;
  std::vector<std::string_view> split(std::string_view text) const;

  struct Regexes;  // compiled patterns (pretokenize_regex.cc)

 private:
  std::string name_ = "longctx";
  bool ignore_merges_ = false;
  std::shared_ptr<const Regexes> regexes_;  // null for "longctx"
};

}  // namespace longctx::tokenizer
