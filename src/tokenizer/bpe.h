// Byte-level BPE tokenizer: training, encoding, decoding, and the GGUF "gpt2" tokenizer
// convention that llama.cpp reads (tokenizer.ggml.tokens / merges / token_type).
//
// Byte-level means the base alphabet is the 256 byte values, so every byte string encodes and
// decode(encode(s)) == s exactly, for invalid UTF-8 and NUL bytes too. Text is first split by the
// pre-tokenizer (pretokenize.h); merges never cross a piece boundary.
//
// Vocabulary layout of a trained tokenizer:
//   ids 0..255           single bytes (id == byte value);
//   ids 256..256+M-1     one token per merge, in merge order (rank r -> id 256 + r);
//   last three ids       <|bos|>, <|eos|>, <|pad|> (control tokens: decode to "", never produced
//                        by encode, and "<|bos|>" in the input text is encoded as plain bytes).
// from_gguf accepts any consistent gpt2-style vocabulary, not only this layout; byte_id() and
// merges() describe whichever layout is loaded.
//
// All const methods are thread-safe (encode keeps its piece cache per call).
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace longctx::tokenizer {

struct TrainOptions {
  // Total vocabulary: 256 byte tokens + merges + 3 specials. Training stops early (and the
  // tokenizer's vocab_size() is smaller) when the text has no pair left to merge.
  int vocab_size = 4096;
  // Optional; called every 100 merges and once at the end with (merges done, merges planned).
  std::function<void(int done, int total)> progress;
};

// One merge rule: the adjacent tokens (left, right) become `result`. A merge's rank is its index in
// BpeTokenizer::merges(); lower ranks apply first.
struct Merge {
  int32_t left = 0;
  int32_t right = 0;
  int32_t result = 0;
};

class BpeTokenizer {
 public:
  static constexpr int kMaxVocabSize = 1 << 20;
  static constexpr int kNumSpecials = 3;
  static constexpr const char* kBosText = "<|bos|>";
  static constexpr const char* kEosText = "<|eos|>";
  static constexpr const char* kPadText = "<|pad|>";

  // Learns merges from `text`. Errors: vocab_size < 260 (256 bytes + 3 specials + 1 merge) or
  // > kMaxVocabSize, empty text. Ties between equally frequent pairs go to the smallest
  // (left id, right id), so the result depends only on the text and the options.
  static Expected<BpeTokenizer> train(std::string_view text, const TrainOptions& opt);

  // Raw bytes in; special-token text is never parsed, and no BOS is added.
  std::vector<int32_t> encode(std::string_view text) const;
  // Appends the tokens of `text` to `out` (same result as encode).
  void encode_append(std::string_view text, std::vector<int32_t>& out) const;

  // Concatenated token bytes; specials decode to "". An id outside [0, vocab_size) is a bug in
  // the caller and CHECK-fails; ids from outside the program go through decode_checked.
  std::string decode(std::span<const int32_t> ids) const;
  Expected<std::string> decode_checked(std::span<const int32_t> ids) const;
  // Raw bytes of one token (for streaming output, which must join bytes across tokens before
  // printing a UTF-8 character); "" for specials. CHECKs the id.
  const std::string& token_bytes(int32_t id) const;

  int vocab_size() const { return static_cast<int>(token_bytes_.size()); }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  bool is_special(int32_t id) const { return id == bos_ || id == eos_ || id == pad_; }
  // The token holding exactly byte `b` (== b for a trained tokenizer).
  int32_t byte_id(uint8_t b) const { return byte_id_[b]; }
  const std::vector<Merge>& merges() const { return merges_; }

  // GGUF "gpt2" tokenizer convention (llama.cpp's tokenizer.ggml.model = "gpt2"): token strings
  // through GPT-2's bytes_to_unicode map (byte 0x20 -> "Ġ", 0x0A -> "Ċ"), specials as their
  // literal text; merges as "left right" in the same map (the map never yields a space, so the
  // single space is unambiguous); token types 1 = normal, 3 = control (the specials).
  std::vector<std::string> gguf_tokens() const;
  std::vector<std::string> gguf_merges() const;
  std::vector<int32_t> gguf_token_types() const;

  // Inverse of the gguf_* functions. Validates everything and returns a Status naming the first
  // problem: an empty or duplicate token, a character outside GPT-2's byte alphabet, a byte with
  // no token, a merge that is not "left right" or whose sides (or their join) are not tokens, a
  // repeated merge, a special id out of range or that is a byte token or part of a merge.
  // bos, eos and pad may share an id (GPT-2 uses one <|endoftext|> for all three).
  static Expected<BpeTokenizer> from_gguf(const std::vector<std::string>& tokens,
                                          const std::vector<std::string>& merges, int32_t bos,
                                          int32_t eos, int32_t pad);

 private:
  BpeTokenizer() = default;
  // Appends the tokens of one pre-tokenizer piece, applying merges lowest rank first.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // Rank of the merge (left, right), or -1.
  int32_t merge_rank(int32_t left, int32_t right) const;
  void index_merges();

  std::vector<std::string> token_bytes_;  // [vocab_size]; "" for specials
  std::array<int32_t, 256> byte_id_{};
  std::vector<Merge> merges_;                                  // in rank order
  std::unordered_map<uint64_t, int32_t> merge_rank_;           // (left << 32 | right) -> rank
  std::vector<std::pair<int32_t, std::string>> special_text_;  // id -> GGUF text
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t pad_ = -1;
};

// GPT-2's bytes_to_unicode: each byte becomes one printable code point (printable ASCII and
// Latin-1 map to themselves, the other 68 bytes to U+0100..U+0143), written as UTF-8.
std::string gpt2_bytes_to_text(std::string_view bytes);
// Inverse; errors on invalid UTF-8 or a character outside that 256-character alphabet.
Expected<std::string> gpt2_text_to_bytes(std::string_view text);

}  // namespace longctx::tokenizer
