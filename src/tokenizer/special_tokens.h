// Special-token text in the input: splits a string into runs of plain text and the special tokens
// written in it, the way Hugging Face `tokenizers` extracts added tokens before pre-tokenization
// (and llama.cpp's tokenizer_st_partition): scanning left to right, the first position where a
// special token's text starts wins, and among the tokens starting there the longest.
//
// Two kinds of entries: control tokens (GGUF token_type 3: <|im_start|>, <|endoftext|>) are
// matched only when the caller asks (parse_special); user-defined tokens (type 4, HF's added
// tokens that are not special) are matched always, as both HF and llama.cpp do.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace longctx::tokenizer {

class SpecialTokenMatcher {
 public:
  struct Entry {
    std::string text;  // non-empty
    int32_t id = 0;
    bool control = true;
  };

  SpecialTokenMatcher() = default;
  explicit SpecialTokenMatcher(std::vector<Entry> entries);

  bool empty() const { return entries_.empty(); }
  // Whether split() can find anything: some entry, and a user-defined one unless parse_control.
  bool can_match(bool parse_control) const {
    return parse_control ? !entries_.empty() : has_user_defined_;
  }

  // Calls on_text(run) for every maximal run of text without a matched token (never empty) and
  // on_token(id) for every matched token, in order.
  template <typename OnText, typename OnToken>
  void split(std::string_view text, bool parse_control, OnText&& on_text,
             OnToken&& on_token) const {
    size_t run_begin = 0, pos = 0;
    while (pos < text.size()) {
      const Entry* hit = match_at(text, pos, parse_control);
      if (hit == nullptr) {
        ++pos;
        continue;
      }
      if (pos > run_begin) on_text(text.substr(run_begin, pos - run_begin));
      on_token(hit->id);
      pos += hit->text.size();
      run_begin = pos;
    }
    if (run_begin < text.size()) on_text(text.substr(run_begin));
  }

 private:
  // The longest entry whose text starts at text[pos], or null.
  const Entry* match_at(std::string_view text, size_t pos, bool parse_control) const;

  std::vector<Entry> entries_;
  bool has_user_defined_ = false;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // entry indices, longest text first
};

}  // namespace longctx::tokenizer
