// tokenizer.json of SentencePiece-style BPE -> GgufVocab model "llama" (hf_json.h): byte_fallback,
// a '▁' from a normalizer or a Metaspace pre-tokenizer, and merges that token scores reproduce.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "tokenizer/hf_json_internal.h"

namespace longctx::tokenizer::hf_json {
namespace {

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581 '▁'

// Whether a pattern object is {"String": s} (or {"Regex": s} when regex) with that text.
bool pattern_is(const Json* pattern, const char* form, std::string_view text) {
  if (pattern == nullptr) return false;
  const Json* p = member(*pattern, form);
  return p != nullptr && p->is_string() && p->get<std::string>() == text;
}

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

}  // namespace

Status convert_spm(const BpeModel& m, Vocab& vocab, GgufVocab* v) {
  auto add_space_prefix = spm_normalization(m.normalizer, m.pre);
  if (!add_space_prefix.ok()) return add_space_prefix.status();
  LONGCTX_RETURN_IF_ERROR(spm_decoder(m.decoder, *add_space_prefix));
  if (m.ignore_merges) return Status::Error("model.ignore_merges=true is not supported for SentencePiece-style BPE");
  if (m.normalizer != nullptr) {
    for (size_t i = 0; i < vocab.added.size(); ++i) {
      if (vocab.added_normalized[i]) {
        return Status::Error("added token " + quote(vocab.text[vocab.added[i]]) +
                             " is normalized, which is not supported with a normalizer");
      }
    }
  }
  v->model = "llama";
  v->pre = "";
  v->add_space_prefix = *add_space_prefix;
  const size_t n = vocab.text.size();
  for (size_t i = 0; i < n; ++i) {
    if (vocab.type[i] == static_cast<int32_t>(TokenType::kNormal) && is_byte_token(vocab.text[i])) {
      vocab.type[i] = static_cast<int32_t>(TokenType::kByte);
    }
  }
  if (m.unk && vocab.type[*m.unk] == static_cast<int32_t>(TokenType::kControl)) {
    vocab.type[*m.unk] = static_cast<int32_t>(TokenType::kUnknown);
  }
  // Scores: -(rank of the first merge that makes the token); the rest below every merge.
  const Merges& merges = *m.merges;
  const float low = -static_cast<float>(merges.size());
  v->scores.assign(n, low);
  for (size_t r = merges.size(); r-- > 0;) {
    const auto [l, rt] = merges[r];
    v->scores[vocab.id.at(vocab.text[l] + vocab.text[rt])] = -static_cast<float>(r);
  }
  if (!m.fuse_unk && m.unk) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      if (!vocab.id.count(name)) {
        return Status::Error(std::string("model.fuse_unk=false with no token ") + name +
                             " is not supported (longctx fuses unknown characters)");
      }
    }
  }
  return Status::Ok();
}

Status check_spm_merges(const BpeTokenizer& tok, const GgufVocab& v, const Merges& merges) {
  const std::vector<Merge>& derived = tok.merges();
  for (size_t r = 0; r < std::max(derived.size(), merges.size()); ++r) {
    const bool have_hf = r < merges.size(), have_derived = r < derived.size();
    if (have_hf && have_derived && derived[r].left == merges[r].first && derived[r].right == merges[r].second) {
      continue;
    }
    auto show = [&](int32_t l, int32_t rt) { return "(" + quote(v.tokens[l]) + ", " + quote(v.tokens[rt]) + ")"; };
    return Status::Error(
        "model.merges cannot be expressed as SentencePiece scores (longctx merges every split of a "
        "token into two tokens, by the token's score): merge " +
        std::to_string(r) + " is " + (have_hf ? show(merges[r].first, merges[r].second) : std::string("absent")) +
        " in the file but " + (have_derived ? show(derived[r].left, derived[r].right) : std::string("absent")) +
        " from the scores");
  }
  return Status::Ok();
}

}  // namespace longctx::tokenizer::hf_json
