// Hugging Face tokenizer.json / tokenizer_config.json -> GgufVocab (see hf_json.h for the forms
// supported). The JSON comes from outside the program: it is parsed without exceptions and every
// member's type is checked before it is read, so any input gives either a vocabulary or one
// Status; a json exception that slipped through would still be caught at the entry points.
#include "tokenizer/hf_json.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer {
namespace {

using Json = nlohmann::json;

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581 '▁'

std::string clip(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // whole characters
  return std::string(s.substr(0, cut)) + "...";
}

std::string quote(std::string_view s) { return "'" + clip(s, 60) + "'"; }

std::string dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

// A short human-readable form of a normalizer, pre-tokenizer, decoder or pattern for messages:
// Sequence[Split(behavior="Isolated", invert=false, pattern=Regex("...")), ByteLevel(...)].
std::string describe_rec(const Json& j, int depth) {
  if (depth > 8) return "...";
  if (j.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < j.size(); ++i) out += (i ? ", " : "") + describe_rec(j[i], depth + 1);
    return out + "]";
  }
  if (!j.is_object()) return clip(dump(j), 60);
  auto t = j.find("type");
  if (t == j.end() || !t->is_string()) {  // {"Regex": "..."}, {"String": " "}
    std::string out;
    for (auto it = j.begin(); it != j.end(); ++it) {
      out += (out.empty() ? "" : ", ") + it.key() + "(" + describe_rec(it.value(), depth + 1) + ")";
    }
    return out.empty() ? "{}" : out;
  }
  const std::string type = t->get<std::string>();
  std::string args, seq;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "type") continue;
    if (type == "Sequence" && it.value().is_array()) {
      seq = describe_rec(it.value(), depth + 1);
      continue;
    }
    args += (args.empty() ? "" : ", ") + it.key() + "=" + describe_rec(it.value(), depth + 1);
  }
  if (type == "Sequence") return "Sequence" + (seq.empty() ? "[]" : seq);
  return args.empty() ? type : type + "(" + args + ")";
}

std::string describe(const Json* j) { return j == nullptr ? "none" : clip(describe_rec(*j, 0), 400); }

// Member `key` of `o`, or null when `o` is no object, has no such member or it is JSON null.
const Json* member(const Json& o, const char* key) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(key);
  if (it == o.end() || it->is_null()) return nullptr;
  return &*it;
}

// "a string", "an object"... for messages.
std::string kind(const Json& j) {
  const std::string t = j.type_name();
  return (t == "array" || t == "object" ? "an " : "a ") + t;
}

// The "type" member of an object, or "".
std::string type_of(const Json& o) {
  const Json* t = member(o, "type");
  return t != nullptr && t->is_string() ? t->get<std::string>() : std::string();
}

Status read_bool(const Json& o, const char* key, bool* out, const std::string& where) {
  const Json* v = member(o, key);
  if (v == nullptr) return Status::Ok();
  if (!v->is_boolean()) {
    return Status::Error(where + "." + key + " is " + kind(*v) + ", not a boolean");
  }
  *out = v->get<bool>();
  return Status::Ok();
}

// A string member, or nullopt when absent or null; an error for any other type.
Expected<std::optional<std::string>> read_string(const Json& o, const char* key, const std::string& where) {
  const Json* v = member(o, key);
  if (v == nullptr) return std::optional<std::string>();
  if (!v->is_string()) return Status::Error(where + "." + key + " is " + kind(*v) + ", not a string");
  return std::optional<std::string>(v->get<std::string>());
}

// An integer that fits int64 (JSON floats such as 3.0 are not integers here), or nullopt.
std::optional<int64_t> as_int(const Json& v) {
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(INT64_MAX)) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) return v.get<int64_t>();
  return std::nullopt;
}

// The steps of a Sequence (its list member `list_key`), or the object itself.
Expected<std::vector<const Json*>> steps_of(const Json& j, const char* list_key, const std::string& what) {
  std::vector<const Json*> steps;
  if (type_of(j) != "Sequence") {
    steps.push_back(&j);
    return steps;
  }
  const Json* list = member(j, list_key);
  if (list == nullptr || !list->is_array()) {
    return Status::Error(what + " Sequence has no \"" + list_key + "\" list");
  }
  for (const Json& s : *list) steps.push_back(&s);
  return steps;
}

// Whether a pattern object is {"String": s} (or {"Regex": s} when regex) with that text.
bool pattern_is(const Json* pattern, const char* form, std::string_view text) {
  if (pattern == nullptr) return false;
  const Json* p = member(*pattern, form);
  return p != nullptr && p->is_string() && p->get<std::string>() == text;
}

bool string_member_is(const Json& o, const char* key, std::string_view text) {
  const Json* v = member(o, key);
  return v != nullptr && v->is_string() && v->get<std::string>() == text;
}

// ---------------------------------------------------------------------------------------------
// The vocabulary: model.vocab and added_tokens.

struct Vocab {
  std::vector<std::string> text;                // by id
  std::vector<int32_t> type;                    // TokenType by id
  std::unordered_map<std::string, int32_t> id;  // text -> id
  std::vector<int32_t> added;                   // ids of added tokens
  std::vector<bool> added_normalized;           // parallel to `added`
};

Status read_vocab(const Json& model, const Json& root, Vocab& v) {
  const Json* vocab = member(model, "vocab");
  if (vocab == nullptr) return Status::Error("model.vocab is missing");
  if (!vocab->is_object()) return Status::Error("model.vocab is " + kind(*vocab) + ", not an object of token -> id");
  // Ids are checked against the limit before anything is sized by them.
  const int64_t kLimit = BpeTokenizer::kMaxVocabSize;
  std::unordered_map<int32_t, std::string> by_id;
  by_id.reserve(vocab->size());
  auto add = [&](const std::string& text, const Json& id_json, const std::string& where) -> Status {
    const std::optional<int64_t> id = as_int(id_json);
    if (!id) return Status::Error(where + " id is " + kind(id_json) + ", not an integer");
    if (*id < 0 || *id >= kLimit) {
      return Status::Error(where + " id " + std::to_string(*id) + " is outside [0, " + std::to_string(kLimit) + ")");
    }
    if (text.empty()) return Status::Error(where + " is empty");
    return Status::Ok();
  };
  for (auto it = vocab->begin(); it != vocab->end(); ++it) {
    const std::string where = "model.vocab " + quote(it.key());
    LONGCTX_RETURN_IF_ERROR(add(it.key(), it.value(), where));
    const int32_t id = static_cast<int32_t>(*as_int(it.value()));
    auto [pos, inserted] = by_id.emplace(id, it.key());
    if (!inserted) {
      return Status::Error("model.vocab: " + quote(pos->second) + " and " + quote(it.key()) + " both have id " +
                           std::to_string(id));
    }
  }
  std::vector<std::pair<int32_t, bool>> added;  // (id, special)
  if (const Json* list = member(root, "added_tokens")) {
    if (!list->is_array()) return Status::Error("added_tokens is " + kind(*list) + ", not a list");
    for (size_t i = 0; i < list->size(); ++i) {
      const Json& t = (*list)[i];
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!t.is_object()) return Status::Error(where + " is " + kind(t) + ", not an object");
      auto content = read_string(t, "content", where);
      if (!content.ok()) return content.status();
      if (!content->has_value()) return Status::Error(where + " has no content");
      const Json* id_json = member(t, "id");
      if (id_json == nullptr) return Status::Error(where + " " + quote(**content) + " has no id");
      LONGCTX_RETURN_IF_ERROR(add(**content, *id_json, where + " " + quote(**content)));
      const int32_t id = static_cast<int32_t>(*as_int(*id_json));
      bool special = false, lstrip = false, rstrip = false, single_word = false;
      LONGCTX_RETURN_IF_ERROR(read_bool(t, "special", &special, where));
      LONGCTX_RETURN_IF_ERROR(read_bool(t, "lstrip", &lstrip, where));
      LONGCTX_RETURN_IF_ERROR(read_bool(t, "rstrip", &rstrip, where));
      LONGCTX_RETURN_IF_ERROR(read_bool(t, "single_word", &single_word, where));
      bool normalized = !special;  // HF's default
      LONGCTX_RETURN_IF_ERROR(read_bool(t, "normalized", &normalized, where));
      if (lstrip || rstrip || single_word) {
        return Status::Error(where + " " + quote(**content) + ": lstrip, rstrip and single_word are not supported");
      }
      auto [pos, inserted] = by_id.emplace(id, **content);
      if (!inserted && pos->second != **content) {
        return Status::Error(where + " " + quote(**content) + " has id " + std::to_string(id) + ", which is " +
                             quote(pos->second));
      }
      added.emplace_back(id, special);
      v.added_normalized.push_back(normalized);
    }
  }
  if (by_id.empty()) return Status::Error("the vocabulary is empty");
  int32_t max_id = 0;
  for (const auto& [id, text] : by_id) max_id = std::max(max_id, id);
  const size_t n = static_cast<size_t>(max_id) + 1;
  if (by_id.size() != n) {
    int32_t hole = 0;
    while (by_id.count(hole)) ++hole;
    return Status::Error("token ids are not dense: " + std::to_string(by_id.size()) + " tokens (model.vocab and " +
                         "added_tokens) have ids up to " + std::to_string(max_id) + ", and none has id " +
                         std::to_string(hole));
  }
  v.text.resize(n);
  v.type.assign(n, static_cast<int32_t>(TokenType::kNormal));
  v.id.reserve(n);
  for (auto& [id, text] : by_id) {
    auto [pos, inserted] = v.id.emplace(text, id);
    if (!inserted) {
      return Status::Error("token " + quote(text) + " has two ids, " + std::to_string(std::min(pos->second, id)) +
                           " and " + std::to_string(std::max(pos->second, id)));
    }
    v.text[id] = std::move(text);
  }
  for (const auto& [id, special] : added) {
    v.added.push_back(id);
    v.type[id] = static_cast<int32_t>(special ? TokenType::kControl : TokenType::kUserDefined);
  }
  return Status::Ok();
}

// model.merges as (left id, right id), rank order; both sides and their join must be tokens.
Expected<std::vector<std::pair<int32_t, int32_t>>> read_merges(const Json& model, const Vocab& v) {
  std::vector<std::pair<int32_t, int32_t>> out;
  const Json* merges = member(model, "merges");
  if (merges == nullptr) return out;
  if (!merges->is_array()) return Status::Error("model.merges is " + kind(*merges) + ", not a list");
  out.reserve(merges->size());
  for (size_t r = 0; r < merges->size(); ++r) {
    const Json& m = (*merges)[r];
    const std::string where = "model.merges[" + std::to_string(r) + "]";
    std::string left, right;
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
        return Status::Error(where + " " + quote(s) + " is not two tokens separated by one space");
      }
      left = s.substr(0, space), right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else {
      return Status::Error(where + " is " + clip(dump(m), 60) + ", not \"left right\" or [left, right]");
    }
    const std::string joined = left + right;
    int32_t ids[3];
    const std::string* parts[3] = {&left, &right, &joined};
    const char* roles[3] = {"left side", "right side", "joined result"};
    for (int k = 0; k < 3; ++k) {
      auto it = v.id.find(*parts[k]);
      if (it == v.id.end()) {
        return Status::Error(where + " (" + quote(left) + ", " + quote(right) + "): " + roles[k] + " " +
                             quote(*parts[k]) + " is not a token");
      }
      ids[k] = it->second;
    }
    out.emplace_back(ids[0], ids[1]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Byte-level BPE: the pre-tokenizer name.

Expected<std::string> byte_level_pre(const Json& pre, bool ignore_merges) {
  const std::string what = "pre-tokenizer " + describe(&pre);
  const Status unsupported = Status::Error(
      what +
      " is not supported (longctx knows ByteLevel(use_regex=true), Sequence[Digits(individual_digits=true), "
      "ByteLevel(use_regex=true)] and Sequence[Split(Regex, Isolated)..., ByteLevel(use_regex=false)] with "
      "the regexes of its pre-tokenizers)");
  auto steps = steps_of(pre, "pretokenizers", "pre-tokenizer");
  if (!steps.ok()) return steps.status();
  Expected<PreTokenizer::Definition> gpt2 = PreTokenizer::definition("gpt2");
  if (!gpt2.ok() || gpt2->patterns.size() != 1) return Status::Error("internal: no gpt2 pre-tokenizer");
  std::vector<std::string> patterns;
  for (size_t i = 0; i < steps->size(); ++i) {
    const Json& s = *(*steps)[i];
    const std::string type = type_of(s);
    const bool last = i + 1 == steps->size();
    if (type == "ByteLevel") {
      if (!last) return unsupported;
      bool add_prefix_space = true, use_regex = true;  // HF's defaults
      LONGCTX_RETURN_IF_ERROR(read_bool(s, "add_prefix_space", &add_prefix_space, "pre-tokenizer ByteLevel"));
      LONGCTX_RETURN_IF_ERROR(read_bool(s, "use_regex", &use_regex, "pre-tokenizer ByteLevel"));
      if (add_prefix_space) {
        return Status::Error(what +
                             ": ByteLevel add_prefix_space=true is not supported (no longctx pre-tokenizer "
                             "puts a space before the text)");
      }
      if (use_regex) patterns.push_back(gpt2->patterns[0]);
    } else if (last) {
      return unsupported;  // ByteLevel must come last (it maps the text to GPT-2's alphabet)
    } else if (type == "Split") {
      const Json* pattern = member(s, "pattern");
      const Json* regex = pattern != nullptr ? member(*pattern, "Regex") : nullptr;
      bool invert = false;
      LONGCTX_RETURN_IF_ERROR(read_bool(s, "invert", &invert, "pre-tokenizer Split"));
      if (regex == nullptr || !regex->is_string() || !string_member_is(s, "behavior", "Isolated") || invert) {
        return unsupported;
      }
      patterns.push_back(regex->get<std::string>());
    } else if (type == "Digits") {
      bool individual = false;
      LONGCTX_RETURN_IF_ERROR(read_bool(s, "individual_digits", &individual, "pre-tokenizer Digits"));
      if (!individual) return unsupported;
      patterns.push_back(R"(\p{N})");
    } else {
      return unsupported;
    }
  }
  if (patterns.empty()) return unsupported;
  std::vector<std::string> names = {"gpt-2", "smollm", "llama-bpe", "dbrx", "qwen2"};
  for (const std::string& n : PreTokenizer::names()) {
    if (n != "longctx" && std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
  }
  bool regexes_known = false;
  for (const std::string& n : names) {
    Expected<PreTokenizer::Definition> def = PreTokenizer::definition(n);
    if (!def.ok() || def->patterns != patterns) continue;
    regexes_known = true;
    if (def->ignore_merges == ignore_merges) return n;
  }
  if (regexes_known) {
    return Status::Error(what + " with model.ignore_merges=" + (ignore_merges ? "true" : "false") +
                         " is not supported (longctx ties ignore_merges to Llama 3's regex)");
  }
  return Status::Error(what + " is not supported: its regexes are none of longctx's pre-tokenizers");
}

Status byte_level_decoder(const Json* decoder) {
  const Status bad =
      Status::Error("decoder " + describe(decoder) + " is not supported for byte-level BPE (expected ByteLevel)");
  if (decoder == nullptr) return bad;
  auto steps = steps_of(*decoder, "decoders", "decoder");
  if (!steps.ok()) return steps.status();
  if (steps->size() != 1 || type_of(*steps->front()) != "ByteLevel") return bad;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// SentencePiece-style BPE: where the '▁' comes from, and the decoder.

// Returns add_space_prefix.
Expected<bool> spm_normalization(const Json* normalizer, const Json* pre) {
  const std::string expected =
      " (SentencePiece-style BPE needs the normalizer Sequence[Prepend(\"▁\"), Replace(\" \", \"▁\")] and no "
      "pre-tokenizer, or no normalizer and Metaspace(prepend_scheme=\"never\", split=false))";
  if (normalizer != nullptr) {
    const Status bad = Status::Error("normalizer " + describe(normalizer) + " is not supported" + expected);
    if (pre != nullptr) {
      return Status::Error("pre-tokenizer " + describe(pre) + " with a normalizer is not supported" + expected);
    }
    auto steps = steps_of(*normalizer, "normalizers", "normalizer");
    if (!steps.ok()) return steps.status();
    bool prepend = false, replace = false;
    for (const Json* s : *steps) {
      const std::string type = type_of(*s);
      if (type == "Prepend" && !prepend && string_member_is(*s, "prepend", kSpaceMark)) {
        prepend = true;
      } else if (type == "Replace" && !replace && pattern_is(member(*s, "pattern"), "String", " ") &&
                 string_member_is(*s, "content", kSpaceMark)) {
        replace = true;
      } else {
        return bad;
      }
    }
    if (!replace) return bad;
    return prepend;
  }
  if (pre == nullptr) return Status::Error("no normalizer and no pre-tokenizer" + expected);
  const Status bad = Status::Error("pre-tokenizer " + describe(pre) + " is not supported" + expected);
  if (type_of(*pre) != "Metaspace") return bad;
  auto replacement = read_string(*pre, "replacement", "pre-tokenizer Metaspace");
  if (!replacement.ok()) return replacement.status();
  bool split = true, add_prefix_space = true;
  LONGCTX_RETURN_IF_ERROR(read_bool(*pre, "split", &split, "pre-tokenizer Metaspace"));
  LONGCTX_RETURN_IF_ERROR(read_bool(*pre, "add_prefix_space", &add_prefix_space, "pre-tokenizer Metaspace"));
  auto scheme = read_string(*pre, "prepend_scheme", "pre-tokenizer Metaspace");
  if (!scheme.ok()) return scheme.status();
  const std::string prepend = scheme->value_or(add_prefix_space ? "always" : "never");
  if (replacement->value_or(std::string(kSpaceMark)) != kSpaceMark) return bad;
  if (split) {
    return Status::Error("pre-tokenizer " + describe(pre) +
                         ": Metaspace with split=true is not supported (merges would stop at every '▁')");
  }
  if (prepend != "never") {
    return Status::Error("pre-tokenizer " + describe(pre) + ": Metaspace with prepend_scheme \"" + prepend +
                         "\" is not supported (it puts no '▁' before text that starts with a space" +
                         (prepend == "first" ? " or follows a special token" : "") +
                         "; longctx's SentencePiece model always does, as the Prepend normalizer)");
  }
  return false;
}

Status spm_decoder(const Json* decoder, bool add_space_prefix) {
  const Status bad = Status::Error("decoder " + describe(decoder) +
                                   " is not supported for SentencePiece-style BPE (expected Sequence[Replace(\"▁\", "
                                   "\" \"), ByteFallback, Fuse" +
                                   (add_space_prefix ? ", Strip(\" \", 1, 0)]" : "]") + ")");
  if (decoder == nullptr) return bad;
  auto steps = steps_of(*decoder, "decoders", "decoder");
  if (!steps.ok()) return steps.status();
  bool replace = false, byte_fallback = false, fuse = false, strip = false;
  for (size_t i = 0; i < steps->size(); ++i) {
    const Json& s = *(*steps)[i];
    const std::string type = type_of(s);
    if (type == "Replace" && pattern_is(member(s, "pattern"), "String", kSpaceMark) &&
        string_member_is(s, "content", " ")) {
      replace = true;
    } else if (type == "Metaspace" && string_member_is(s, "replacement", kSpaceMark) &&
               (string_member_is(s, "prepend_scheme", "never") ||
                (member(s, "prepend_scheme") == nullptr && member(s, "add_prefix_space") != nullptr &&
                 member(s, "add_prefix_space")->is_boolean() && !member(s, "add_prefix_space")->get<bool>()))) {
      replace = true;  // Metaspace that strips nothing: a Replace
    } else if (type == "ByteFallback") {
      byte_fallback = true;
    } else if (type == "Fuse") {
      fuse = true;
    } else if (type == "Strip" && i + 1 == steps->size() && fuse) {
      const Json* content = member(s, "content");
      const Json* start = member(s, "start");
      const Json* stop = member(s, "stop");
      if (content == nullptr || !content->is_string() || content->get<std::string>() != " " || start == nullptr ||
          as_int(*start) != 1 || (stop != nullptr && as_int(*stop) != 0)) {
        return bad;
      }
      strip = true;
    } else {
      return bad;
    }
  }
  if (!replace || !byte_fallback || strip != add_space_prefix) return bad;
  return Status::Ok();
}

// "<0x0A>" -> true (upper-case hex, the form HF's byte_fallback looks up).
bool is_byte_token(std::string_view t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return t.size() == 6 && t.substr(0, 3) == "<0x" && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

// ---------------------------------------------------------------------------------------------
// post_processor: a TemplateProcessing whose single sequence starts with a special token adds
// that token (BOS).

Status template_bos(const Json* post, const Vocab& v, std::optional<int32_t>* bos) {
  if (post == nullptr) return Status::Ok();
  auto steps = steps_of(*post, "processors", "post_processor");
  if (!steps.ok()) return steps.status();
  for (const Json* s : *steps) {
    if (type_of(*s) != "TemplateProcessing") continue;
    const Json* single = member(*s, "single");
    if (single == nullptr || !single->is_array()) {
      return Status::Error("post_processor TemplateProcessing has no \"single\" list");
    }
    if (single->empty()) continue;
    const Json* first = member((*single)[0], "SpecialToken");
    if (first == nullptr) continue;
    auto name = read_string(*first, "id", "post_processor TemplateProcessing single[0].SpecialToken");
    if (!name.ok()) return name.status();
    if (!name->has_value()) return Status::Error("post_processor TemplateProcessing single[0] has no id");
    // special_tokens maps the name to its ids; a name that is one token's text needs no entry.
    const Json* specials = member(*s, "special_tokens");
    const Json* entry = specials != nullptr ? member(*specials, (*name)->c_str()) : nullptr;
    const Json* ids = entry != nullptr ? member(*entry, "ids") : nullptr;
    if (ids != nullptr && ids->is_array() && ids->size() == 1 && as_int((*ids)[0])) {
      const int64_t id = *as_int((*ids)[0]);
      if (id < 0 || id >= static_cast<int64_t>(v.text.size())) {
        return Status::Error("post_processor: special token " + quote(**name) + " has id " + std::to_string(id) +
                             ", outside the vocabulary");
      }
      *bos = static_cast<int32_t>(id);
    } else {
      auto it = v.id.find(**name);
      if (it == v.id.end()) {
        return Status::Error("post_processor: special token " + quote(**name) + " is not one token");
      }
      *bos = it->second;
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// tokenizer_config.json.

struct Config {
  std::optional<int32_t> bos, eos, pad, unk;
  std::optional<bool> add_bos;
  std::optional<std::string> chat_template;
};

Status read_config(const Json& cfg, const Vocab& v, Config& c) {
  if (!cfg.is_object()) return Status::Error("is " + kind(cfg) + ", not an object");
  const std::pair<const char*, std::optional<int32_t>*> fields[] = {
      {"bos_token", &c.bos}, {"eos_token", &c.eos}, {"pad_token", &c.pad}, {"unk_token", &c.unk}};
  for (const auto& [key, out] : fields) {
    const Json* t = member(cfg, key);
    if (t == nullptr) continue;
    std::string text;
    if (t->is_string()) {
      text = t->get<std::string>();
    } else if (t->is_object()) {
      const Json* content = member(*t, "content");
      if (content == nullptr || !content->is_string()) {
        return Status::Error(std::string(key) + " is an object without a string \"content\"");
      }
      text = content->get<std::string>();
    } else {
      return Status::Error(std::string(key) + " is " + kind(*t) + ", not a string or an object with \"content\"");
    }
    auto it = v.id.find(text);
    if (it == v.id.end())
      return Status::Error(std::string(key) + " " + quote(text) + " is not a token of tokenizer.json");
    *out = it->second;
  }
  if (const Json* b = member(cfg, "add_bos_token")) {
    if (!b->is_boolean()) return Status::Error("add_bos_token is " + kind(*b) + ", not a boolean");
    c.add_bos = b->get<bool>();
  }
  if (const Json* t = member(cfg, "chat_template")) {
    if (t->is_string()) {
      c.chat_template = t->get<std::string>();
    } else if (t->is_array()) {
      c.chat_template = std::string();
      for (size_t i = 0; i < t->size(); ++i) {
        const Json& e = (*t)[i];
        const Json* name = member(e, "name");
        const Json* tmpl = member(e, "template");
        if (name == nullptr || !name->is_string() || tmpl == nullptr || !tmpl->is_string()) {
          return Status::Error("chat_template[" + std::to_string(i) +
                               "] is not an object with string \"name\" and \"template\"");
        }
        if (name->get<std::string>() == "default") c.chat_template = tmpl->get<std::string>();
      }
    } else {
      return Status::Error("chat_template is " + kind(*t) + ", not a string or a list of {name, template}");
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------

Expected<GgufVocab> convert(std::string_view tokenizer_json, std::string_view config_json, const std::string& tj_name,
                            const std::string& cfg_name) {
  auto fail = [&](const Status& s) { return s.Wrap(tj_name); };
  const Json root = Json::parse(tokenizer_json, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return Status::Error(tj_name + ": not valid JSON");
  if (!root.is_object()) return Status::Error(tj_name + ": is " + kind(root) + ", not an object");
  const Json* model = member(root, "model");
  if (model == nullptr) return Status::Error(tj_name + ": no \"model\"");
  if (!model->is_object()) return Status::Error(tj_name + ": model is " + kind(*model) + ", not an object");
  auto model_type = read_string(*model, "type", "model");
  if (!model_type.ok()) return fail(model_type.status());
  if (!model_type->has_value()) return Status::Error(tj_name + ": model.type is missing");
  if (**model_type != "BPE") {
    return Status::Error(tj_name + ": model type " + quote(**model_type) + " is not supported (only BPE)");
  }
  if (const Json* dropout = member(*model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      return Status::Error(tj_name + ": model.dropout is " + clip(dump(*dropout), 30) +
                           "; BPE dropout is not supported");
    }
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    auto s = read_string(*model, key, "model");
    if (!s.ok()) return fail(s.status());
    if (s->has_value() && !(*s)->empty()) {
      return Status::Error(tj_name + ": model." + key + " " + quote(**s) + " is not supported");
    }
  }
  bool byte_fallback = false, ignore_merges = false, fuse_unk = false;
  LONGCTX_RETURN_IF_ERROR(fail(read_bool(*model, "byte_fallback", &byte_fallback, "model")));
  LONGCTX_RETURN_IF_ERROR(fail(read_bool(*model, "ignore_merges", &ignore_merges, "model")));
  LONGCTX_RETURN_IF_ERROR(fail(read_bool(*model, "fuse_unk", &fuse_unk, "model")));
  auto unk_text = read_string(*model, "unk_token", "model");
  if (!unk_text.ok()) return fail(unk_text.status());

  Vocab vocab;
  LONGCTX_RETURN_IF_ERROR(fail(read_vocab(*model, root, vocab)));
  auto merges = read_merges(*model, vocab);
  if (!merges.ok()) return fail(merges.status());
  const size_t n = vocab.text.size();

  GgufVocab v;
  std::optional<int32_t> model_unk;
  if (unk_text->has_value()) {
    auto it = vocab.id.find(**unk_text);
    if (it == vocab.id.end())
      return Status::Error(tj_name + ": model.unk_token " + quote(**unk_text) + " is not a token");
    model_unk = it->second;
  }
  const Json* normalizer = member(root, "normalizer");
  const Json* pre = member(root, "pre_tokenizer");
  const Json* decoder = member(root, "decoder");
  bool byte_level = false;
  if (pre != nullptr) {
    auto steps = steps_of(*pre, "pretokenizers", "pre-tokenizer");
    if (!steps.ok()) return fail(steps.status());
    for (const Json* s : *steps) byte_level = byte_level || type_of(*s) == "ByteLevel";
  }
  if (byte_level) {
    if (byte_fallback)
      return Status::Error(tj_name + ": byte_fallback with a ByteLevel pre-tokenizer is not supported");
    if (normalizer != nullptr) {
      auto steps = steps_of(*normalizer, "normalizers", "normalizer");
      if (!steps.ok()) return fail(steps.status());
      if (type_of(*normalizer) != "Sequence" || !steps->empty()) {
        return Status::Error(tj_name + ": normalizer " + describe(normalizer) +
                             " is not supported for byte-level BPE (only none)");
      }
    }
    auto name = byte_level_pre(*pre, ignore_merges);
    if (!name.ok()) return fail(name.status());
    LONGCTX_RETURN_IF_ERROR(fail(byte_level_decoder(decoder)));
    v.model = "gpt2";
    v.pre = *name;
    v.add_space_prefix = false;
    for (const auto& [l, r] : *merges) v.merges.push_back(vocab.text[l] + " " + vocab.text[r]);
    if (model_unk) {  // HF would give unk for a byte without a token; longctx drops the byte
      for (int b = 0; b < 256; ++b) {
        const std::string text = gpt2_bytes_to_text(std::string(1, static_cast<char>(b)));
        if (!vocab.id.count(text)) {
          return Status::Error(tj_name + ": model.unk_token with no token for byte " + std::to_string(b) +
                               " is not supported (longctx drops such bytes, as HF does without unk_token)");
        }
      }
    }
  } else if (byte_fallback) {
    auto add_space_prefix = spm_normalization(normalizer, pre);
    if (!add_space_prefix.ok()) return fail(add_space_prefix.status());
    LONGCTX_RETURN_IF_ERROR(fail(spm_decoder(decoder, *add_space_prefix)));
    if (ignore_merges) {
      return Status::Error(tj_name + ": model.ignore_merges=true is not supported for SentencePiece-style BPE");
    }
    if (normalizer != nullptr) {
      for (size_t i = 0; i < vocab.added.size(); ++i) {
        if (vocab.added_normalized[i]) {
          return Status::Error(tj_name + ": added token " + quote(vocab.text[vocab.added[i]]) +
                               " is normalized, which is not supported with a normalizer");
        }
      }
    }
    v.model = "llama";
    v.pre = "";
    v.add_space_prefix = *add_space_prefix;
    for (size_t i = 0; i < n; ++i) {
      if (vocab.type[i] == static_cast<int32_t>(TokenType::kNormal) && is_byte_token(vocab.text[i])) {
        vocab.type[i] = static_cast<int32_t>(TokenType::kByte);
      }
    }
    if (model_unk && vocab.type[*model_unk] == static_cast<int32_t>(TokenType::kControl)) {
      vocab.type[*model_unk] = static_cast<int32_t>(TokenType::kUnknown);
    }
    // Scores: -(rank of the first merge that makes the token); the rest below every merge.
    const float low = -static_cast<float>(merges->size());
    v.scores.assign(n, low);
    for (size_t r = merges->size(); r-- > 0;) {
      const auto [l, rt] = (*merges)[r];
      v.scores[vocab.id.at(vocab.text[l] + vocab.text[rt])] = -static_cast<float>(r);
    }
    if (!fuse_unk && model_unk) {
      for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        if (!vocab.id.count(name)) {
          return Status::Error(tj_name + ": model.fuse_unk=false with no token " + name +
                               " is not supported (longctx fuses unknown characters)");
        }
      }
    }
  } else {
    return Status::Error(tj_name + ": BPE with pre-tokenizer " + describe(pre) + ", normalizer " +
                         describe(normalizer) +
                         " and no byte_fallback is not supported (neither byte-level nor SentencePiece-style BPE)");
  }
  std::optional<int32_t> template_bos_id;
  LONGCTX_RETURN_IF_ERROR(fail(template_bos(member(root, "post_processor"), vocab, &template_bos_id)));

  Config cfg;
  if (!config_json.empty()) {
    const Json c = Json::parse(config_json, nullptr, /*allow_exceptions=*/false);
    if (c.is_discarded()) return Status::Error(cfg_name + ": not valid JSON");
    LONGCTX_RETURN_IF_ERROR(read_config(c, vocab, cfg).Wrap(cfg_name));
  }
  v.bos = cfg.bos ? *cfg.bos : template_bos_id.value_or(-1);
  v.eos = cfg.eos.value_or(-1);
  v.pad = cfg.pad.value_or(-1);
  v.unk = model_unk ? *model_unk : cfg.unk.value_or(-1);
  v.add_bos = cfg.add_bos ? *cfg.add_bos : template_bos_id.has_value();
  v.chat_template = cfg.chat_template.value_or("");
  if (v.add_bos && v.bos < 0) {
    return Status::Error(cfg_name + ": add_bos_token is true, but there is no bos_token");
  }
  v.tokens = std::move(vocab.text);
  v.token_types = std::move(vocab.type);

  // What from_gguf makes of it: the checks it does (GPT-2 alphabet, specials in merges...), and
  // for "llama" whether the scores give exactly HF's merges.
  Expected<BpeTokenizer> tok = BpeTokenizer::from_gguf(v);
  if (!tok.ok()) return fail(tok.status());
  if (v.model == "llama") {
    const std::vector<Merge>& derived = tok->merges();
    for (size_t r = 0; r < std::max(derived.size(), merges->size()); ++r) {
      const bool have_hf = r < merges->size(), have_derived = r < derived.size();
      if (have_hf && have_derived && derived[r].left == (*merges)[r].first && derived[r].right == (*merges)[r].second) {
        continue;
      }
      auto show = [&](int32_t l, int32_t rt) { return "(" + quote(v.tokens[l]) + ", " + quote(v.tokens[rt]) + ")"; };
      return Status::Error(
          tj_name +
          ": model.merges cannot be expressed as SentencePiece scores (longctx merges every split of a "
          "token into two tokens, by the token's score): merge " +
          std::to_string(r) + " is " +
          (have_hf ? show((*merges)[r].first, (*merges)[r].second) : std::string("absent")) + " in the file but " +
          (have_derived ? show(derived[r].left, derived[r].right) : std::string("absent")) + " from the scores");
    }
  }
  return v;
}

Expected<std::string> read_file(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return Status::Error(path.string() + ": cannot open");
  std::stringstream ss;
  ss << f.rdbuf();
  if (f.bad()) return Status::Error(path.string() + ": read error");
  return ss.str();
}

}  // namespace

Expected<GgufVocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json) {
  try {
    return convert(tokenizer_json, tokenizer_config_json, "tokenizer.json", "tokenizer_config.json");
  } catch (const std::exception& e) {  // a bug here, not bad input; still a Status
    return Status::Error(std::string("tokenizer.json: ") + e.what());
  }
}

Expected<GgufVocab> load_hf_vocab(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path tj = fs::path(dir) / "tokenizer.json";
  if (fs::is_regular_file(dir, ec)) tj = fs::path(dir);  // the tokenizer.json itself
  if (!fs::exists(tj, ec)) return Status::Error(tj.string() + ": no such file");
  const fs::path base = tj.parent_path();
  auto text = read_file(tj);
  if (!text.ok()) return text.status();
  std::string config;
  const fs::path cfg = base / "tokenizer_config.json";
  if (fs::exists(cfg, ec)) {
    auto c = read_file(cfg);
    if (!c.ok()) return c.status();
    config = std::move(*c);
  }
  Expected<GgufVocab> v = Status::Error("");
  try {
    v = convert(*text, config, tj.string(), cfg.string());
  } catch (const std::exception& e) {
    return Status::Error(tj.string() + ": " + e.what());
  }
  if (!v.ok()) return v;
  const fs::path jinja = base / "chat_template.jinja";
  if (v->chat_template.empty() && fs::exists(jinja, ec)) {
    auto t = read_file(jinja);
    if (!t.ok()) return t.status();
    v->chat_template = std::move(*t);
  }
  return v;
}

}  // namespace longctx::tokenizer
