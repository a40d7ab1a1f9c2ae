// BPE tokenizers: our own byte-level BPE (training, encoding, decoding) and the tokenizers of real
// GGUF models, behind one type.
//
// Byte-level means the base alphabet is the 256 byte values, so every byte string encodes and
// decode(encode(s)) == s exactly, for invalid UTF-8 and NUL bytes too (for a real vocabulary: when
// it has a token for every byte of s). Text is first split by the pre-tokenizer (pretokenize.h);
// merges never cross a piece boundary.
//
// Vocabulary layout of a trained tokenizer:
//   ids 0..255           single bytes (id == byte value);
//   ids 256..256+M-1     one token per merge, in merge order (rank r -> id 256 + r);
//   last three ids       <|bos|>, <|eos|>, <|pad|> (control tokens: decode to "", never produced
//                        by encode, and "<|bos|>" in the input text is encoded as plain bytes
//                        unless the caller asks for special tokens to be parsed).
// from_gguf accepts any consistent gpt2-style vocabulary, not only this layout; byte_id() and
// merges() describe whichever layout is loaded.
//
// Real models (GGUF tokenizer.ggml.*, read by model::read_tokenizer) load through
// from_gguf(GgufVocab), which follows Hugging Face `tokenizers` and llama.cpp:
//   "gpt2"   byte-level BPE: tokens through GPT-2's byte alphabet (Ġ for a space), merges by
//            rank, the regex pre-tokenizer named by tokenizer.ggml.pre (PreTokenizer::by_name);
//   "llama"  SentencePiece BPE (llama/mistral vocabularies): no pre-tokenizer, ' ' -> U+2581 '▁',
//            a '▁' put before each run of text when add_space_prefix, merges ranked by the merged
//            token's score as HF's converter ranks them, characters that are not tokens fall
//            back to the <0xXX> byte tokens (then to unk). Encoding is in spm.cc.
//   "bert"   WordPiece (BERT, MiniLM...): HF's BertNormalizer (clean_text, CJK spacing, accents
//            stripped, lowercase), BertPreTokenizer (whitespace, each punctuation character its
//            own piece) and WordPiece (greedy longest match, "##" continuations, one unk for a
//            word that cannot be split or is too long). Tokens are stored as llama.cpp writes
//            them: "▁hello" for the word-initial "hello", "ing" for the continuation "##ing",
//            "[CLS]"-like tokens as they are. encode() gives no [CLS]/[SEP]: add_bos()/add_eos()
//            say to add bos_id() ([CLS]) and eos_id() ([SEP]). Encoding is in wpm.cc.
// Special tokens (token_type CONTROL and USER_DEFINED) are split out of the text before the
// pre-tokenizer, leftmost-longest (special_tokens.h): user-defined ones always, control ones only
// with parse_special (encode_special). Control tokens decode to "" unless render_special.
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
#include "tokenizer/pretokenize.h"
#include "tokenizer/special_tokens.h"

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

// GGUF tokenizer.ggml.token_type values (llama.cpp's LLAMA_TOKEN_TYPE_*).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

// The tokenizer keys of a GGUF file (tokenizer.ggml.*, tokenizer.chat_template).
struct GgufVocab {
  std::string model = "gpt2";  // "gpt2" (byte-level BPE), "llama" (SentencePiece BPE), "bert" (WordPiece)
  std::string pre = "longctx";       // pre-tokenizer name; "gpt2" vocabularies only
  std::vector<std::string> tokens;   // [vocab_size]
  std::vector<std::string> merges;   // "left right", rank order; "gpt2" only
  std::vector<float> scores;         // [vocab_size]; "llama" only
  std::vector<int32_t> token_types;  // [vocab_size] TokenType values; empty: all normal
  int32_t bos = -1, eos = -1, pad = -1, unk = -1;  // -1: none
  bool add_bos = false;                            // tokenizer.ggml.add_bos_token
  bool add_eos = false;                            // tokenizer.ggml.add_eos_token
  bool add_space_prefix = true;                    // tokenizer.ggml.add_space_prefix; "llama" only
  std::string chat_template;  // tokenizer.chat_template (Jinja), "" when absent
  // "bert" only (tokenizer.longctx.*; llama.cpp's GGUFs lack them and get these defaults, its
  // behaviour): BertNormalizer's lowercase and strip_accents (HF's null resolved: = lowercase),
  // WordPiece's max_input_chars_per_word.
  bool lowercase = true;
  bool strip_accents = true;
  int32_t max_input_chars_per_word = 100;
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

  // Raw bytes in; control-token text (<|im_start|>, <|bos|>) is encoded as plain text, and no
  // BOS is added (see add_bos()). User-defined tokens are still matched, as in HF.
  std::vector<int32_t> encode(std::string_view text) const;
  // Same, with control-token text in `text` encoded as those tokens (chat templates).
  std::vector<int32_t> encode_special(std::string_view text) const;
  // Appends the tokens of `text` to `out` (encode, or encode_special with parse_special).
  void encode_append(std::string_view text, std::vector<int32_t>& out,
                     bool parse_special = false) const;

  // Concatenated token bytes; control tokens decode to "", or to their text with
  // render_special. An id outside [0, vocab_size) is a bug in the caller and CHECK-fails; ids
  // from outside the program go through decode_checked. ("llama" vocabularies drop the space
  // that add_space_prefix put at the start, as HF's decoder does; "bert" ones are HF's WordPiece
  // decoder: tokens joined by spaces, "##" pieces glued, each token cleaned up, control tokens
  // skipped before joining unless render_special, as HF's skip_special_tokens.)
  std::string decode(std::span<const int32_t> ids, bool render_special = false) const;
  Expected<std::string> decode_checked(std::span<const int32_t> ids,
                                       bool render_special = false) const;
  // Raw bytes of one token (for streaming output, which must join bytes across tokens before
  // printing a UTF-8 character); "" for control tokens. CHECKs the id.
  // "bert": " word" for a word-initial token, "ing" for "##ing", after HF's cleanup (" ." -> "."),
  // so a stream starts with a space and a leading "##" continuation loses its "##", where
  // decode() follows HF exactly.
  const std::string& token_bytes(int32_t id) const;

  int vocab_size() const { return static_cast<int>(token_bytes_.size()); }
  // -1 where the vocabulary has none.
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  // Whether a prompt should start with bos_id() (GGUF tokenizer.ggml.add_bos_token).
  bool add_bos() const { return add_bos_; }
  // Whether a prompt should end with eos_id() (GGUF tokenizer.ggml.add_eos_token; BERT's [SEP]).
  bool add_eos() const { return add_eos_; }
  const std::string& chat_template() const { return chat_template_; }
  // Control tokens: the three of a trained tokenizer, token_type 3 in a GGUF (false for an id
  // outside the vocabulary).
  bool is_special(int32_t id) const {
    return id >= 0 && id < vocab_size() && types_[id] == TokenType::kControl;
  }
  TokenType token_type(int32_t id) const;  // CHECKs the id
  // The token holding exactly byte `b` (== b for a trained tokenizer); -1 where a real
  // vocabulary has none (encode then drops that byte, as HF does; SmolLM2 lacks 21 bytes).
  // "llama" vocabularies: the <0xXX> token, or -1.
  int32_t byte_id(uint8_t b) const { return byte_id_[b]; }
  const std::vector<Merge>& merges() const { return merges_; }

  // GGUF "gpt2" tokenizer convention (llama.cpp's tokenizer.ggml.model = "gpt2"): token strings
  // through GPT-2's bytes_to_unicode map (byte 0x20 -> "Ġ", 0x0A -> "Ċ"), specials as their
  // literal text; merges as "left right" in the same map (the map never yields a space, so the
  // single space is unambiguous); token types as loaded (a trained tokenizer: 1 = normal,
  // 3 = control for its three specials). "llama" vocabularies: their GGUF text, no merges.
  std::vector<std::string> gguf_tokens() const;
  std::vector<std::string> gguf_merges() const;
  std::vector<int32_t> gguf_token_types() const;

  // Everything above plus model, pre-tokenizer, BOS flag and chat template: what
  // model::write_tokenizer_keys stores and from_gguf(GgufVocab) reads back.
  GgufVocab gguf_vocab() const;

  // Inverse of the gguf_* functions, for our own checkpoints ("gpt2", pre-tokenizer "longctx",
  // bos/eos/pad the control tokens). Validates everything and returns a Status naming the first
  // problem: an empty or duplicate token, a character outside GPT-2's byte alphabet, a byte with
  // no token, a merge that is not "left right" or whose sides (or their join) are not tokens, a
  // repeated merge, a special id out of range or that is a byte token or part of a merge.
  // bos, eos and pad may share an id (GPT-2 uses one <|endoftext|> for all three).
  static Expected<BpeTokenizer> from_gguf(const std::vector<std::string>& tokens,
                                          const std::vector<std::string>& merges, int32_t bos,
                                          int32_t eos, int32_t pad);
  // Any GGUF vocabulary: the checks above, plus an unknown model or pre-tokenizer name, token
  // types or scores of the wrong length, an unknown token type, a control or user-defined token
  // inside a merge. A byte without a token is an error only for "longctx" (real vocabularies
  // lack some; encode drops them, as HF does). "llama": every byte needs a <0xXX> token or unk
  // must be set.
  static Expected<BpeTokenizer> from_gguf(const GgufVocab& vocab);

 private:
  BpeTokenizer() = default;
  // Appends the tokens of one pre-tokenizer piece, applying merges lowest rank first.
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;
  // Byte-level BPE of one run of text without special tokens.
  void encode_text(std::string_view text, std::vector<int32_t>& out) const;
  // SentencePiece BPE of one run of text without special tokens (spm.cc).
  void encode_text_spm(std::string_view text, std::vector<int32_t>& out) const;
  // WordPiece of one run of text without special tokens (wpm.cc).
  void encode_text_wpm(std::string_view text, std::vector<int32_t>& out) const;
  // WordPiece decoding (HF's WordPiece decoder with cleanup; wpm.cc).
  std::string decode_wpm(std::span<const int32_t> ids, bool render_special) const;
  // Applies the merges to the symbols `ids` (lowest rank first, leftmost first within a rank).
  // A merge keeps its left symbol's slot and sets the right one's to kMerged, so the result is
  // the slots that are not kMerged, in order. Ids < 0 (spm: a character with no token) never
  // merge.
  static constexpr int32_t kMerged = -2;
  void apply_merges(std::span<int32_t> ids) const;
  // Rank of the merge (left, right), or -1.
  int32_t merge_rank(int32_t left, int32_t right) const;
  void index_merges();
  // After the tables are filled: types_ (if empty), the special-token matcher, the ignore-merges
  // index.
  void finish();
  static Expected<BpeTokenizer> from_gguf_spm(const GgufVocab& v);
  static Expected<BpeTokenizer> from_gguf_wpm(const GgufVocab& v);

  bool spm_ = false;                      // "llama" vocabulary
  bool wpm_ = false;                      // "bert" vocabulary
  std::vector<std::string> token_bytes_;  // [vocab_size]; "" for control tokens
  std::vector<TokenType> types_;          // [vocab_size]
  std::array<int32_t, 256> byte_id_{};    // byte-level: the token of each byte; spm: <0xXX> or -1
  std::vector<Merge> merges_;             // in rank order
  std::unordered_map<uint64_t, int32_t> merge_rank_;           // (left << 32 | right) -> rank
  std::vector<std::pair<int32_t, std::string>> special_text_;  // control, user-defined: GGUF text
  SpecialTokenMatcher specials_;
  PreTokenizer pre_;
  // ignore_merges / spm: text -> id; wpm: HF's text ("hello", "##ing", "[CLS]") -> id
  std::unordered_map<std::string, int32_t> whole_piece_id_;
  std::vector<float> scores_;          // spm: [vocab_size]
  std::vector<std::string> spm_text_;  // spm, wpm: [vocab_size] GGUF text
  int32_t bos_ = -1;
  int32_t eos_ = -1;
  int32_t pad_ = -1;
  int32_t unk_ = -1;
  bool add_bos_ = false;
  bool add_eos_ = false;
  bool add_space_prefix_ = false;
  bool lowercase_ = true;       // wpm
  bool strip_accents_ = true;   // wpm
  int32_t max_word_chars_ = 100;  // wpm
  std::string chat_template_;
};

// GPT-2's bytes_to_unicode: each byte becomes one printable code point (printable ASCII and
// Latin-1 map to themselves, the other 68 bytes to U+0100..U+0143), written as UTF-8.
std::string gpt2_bytes_to_text(std::string_view bytes);
// Inverse; errors on invalid UTF-8 or a character outside that 256-character alphabet.
Expected<std::string> gpt2_text_to_bytes(std::string_view text);

// WordPiece token text: Hugging Face's ("hello", "##ing", "[CLS]") -> the GGUF form llama.cpp's
// converter writes ("▁hello", "ing", "[CLS]"), and back. "[...]" stays as it is, so a
// continuation "##[...]" would not come back (no real vocabulary has one).
std::string wpm_gguf_text(std::string_view hf_text);
std::string wpm_hf_text(std::string_view gguf_text);

}  // namespace longctx::tokenizer
