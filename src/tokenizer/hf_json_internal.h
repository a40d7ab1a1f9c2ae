// What the conversion of tokenizer.json (hf_json.h) shares between its files: checked reading
// of JSON members, the vocabulary read from model.vocab and added_tokens, and the conversion of
// each tokenizer family:
//   hf_json.cc             tokenizer.json / tokenizer_config.json: model, vocabulary, merges,
//                          special tokens and chat template; picks the family; the entry points
//   hf_json_byte_level.cc  byte-level BPE -> model "gpt2"
//   hf_json_spm.cc         SentencePiece-style BPE -> model "llama"
//   hf_json_wpm.cc         WordPiece -> model "bert"
// Internal to tokenizer/.
#pragma once
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer::hf_json {

using Json = nlohmann::json;

// ---- reading JSON from outside the program: every member's type is checked before it is read ----

// `s` cut to at most `max` bytes (whole UTF-8 characters) with "..." when cut.
std::string clip(std::string_view s, size_t max);
// 'text' (clipped), for messages.
std::string quote(std::string_view s);
// Compact JSON text; invalid UTF-8 replaced.
std::string dump(const Json& j);
// A short human-readable form of a normalizer, pre-tokenizer, decoder or pattern for messages:
// Sequence[Split(behavior="Isolated", invert=false, pattern=Regex("...")), ByteLevel(...)];
// "none" for null.
std::string describe(const Json* j);
// Member `key` of `o`, or null when `o` is no object, has no such member or it is JSON null.
const Json* member(const Json& o, const char* key);
// "a string", "an object"... for messages.
std::string kind(const Json& j);
// The "type" member of an object, or "".
std::string type_of(const Json& o);
// A boolean member into *out; *out unchanged when absent or null; an error for any other type.
Status read_bool(const Json& o, const char* key, bool* out, const std::string& where);
// A string member, or nullopt when absent or null; an error for any other type.
Expected<std::optional<std::string>> read_string(const Json& o, const char* key, const std::string& where);
// An integer that fits int64 (JSON floats such as 3.0 are not integers here), or nullopt.
std::optional<int64_t> as_int(const Json& v);
// The steps of a Sequence (its list member `list_key`), or the object itself.
Expected<std::vector<const Json*>> steps_of(const Json& j, const char* list_key, const std::string& what);
// Whether string member `key` of `o` is `text`.
bool string_member_is(const Json& o, const char* key, std::string_view text);

// ---- the vocabulary: model.vocab and added_tokens ----

struct Vocab {
  std::vector<std::string> text;                // by id
  std::vector<int32_t> type;                    // TokenType by id
  std::unordered_map<std::string, int32_t> id;  // text -> id
  std::vector<int32_t> added;                   // ids of added tokens
  std::vector<bool> added_normalized;           // parallel to `added`
};

// model.merges as (left id, right id), in rank order.
using Merges = std::vector<std::pair<int32_t, int32_t>>;

// ---- the families ----

// What a family's conversion reads from tokenizer.json besides the vocabulary.
struct BpeModel {
  const Json* normalizer = nullptr;  // null: none
  const Json* pre = nullptr;         // pre_tokenizer; null: none
  const Json* decoder = nullptr;     // null: none
  bool byte_fallback = false;        // model.*
  bool ignore_merges = false;
  bool fuse_unk = false;
  std::optional<int32_t> unk;  // model.unk_token's id
  const Merges* merges = nullptr;
};

// Whether the pre-tokenizer (or a step of it) is ByteLevel: the mark of byte-level BPE.
Expected<bool> is_byte_level(const Json* pre);

// Fill v's model, pre, add_space_prefix and merges (byte-level) or scores (SentencePiece-style),
// after checking that the file is of that family in a form longctx runs as HF does. The
// SentencePiece-style conversion also sets byte and unknown token types in `vocab`. Errors carry
// no file name.
Status convert_byte_level(const BpeModel& m, const Vocab& vocab, GgufVocab* v);
Status convert_spm(const BpeModel& m, Vocab& vocab, GgufVocab* v);
// WordPiece: v's model, tokens' GGUF text (in vocab.text), unk, bos/eos and add_bos/add_eos from
// the post-processor, lowercase, strip_accents, max_input_chars_per_word.
Status convert_wpm(const Json& root, const Json& model, Vocab& vocab, GgufVocab* v);
// SentencePiece-style: whether the merges that `tok` derives from v's scores are exactly
// model.merges, in order.
Status check_spm_merges(const BpeTokenizer& tok, const GgufVocab& v, const Merges& merges);

}  // namespace longctx::tokenizer::hf_json
