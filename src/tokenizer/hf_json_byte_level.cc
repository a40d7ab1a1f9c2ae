// tokenizer.json of byte-level BPE -> GgufVocab model "gpt2" (hf_json.h): no normalizer, a
// ByteLevel decoder, and a pre-tokenizer whose regexes are those of one of longctx's
// pre-tokenizers (pretokenize_regex.cc), which names it.
#include <algorithm>
#include <string>
#include <vector>

#include "tokenizer/hf_json_internal.h"
#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer::hf_json {
namespace {

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

}  // namespace

Expected<bool> is_byte_level(const Json* pre) {
  bool byte_level = false;
  if (pre != nullptr) {
    auto steps = steps_of(*pre, "pretokenizers", "pre-tokenizer");
    if (!steps.ok()) return steps.status();
    for (const Json* s : *steps) byte_level = byte_level || type_of(*s) == "ByteLevel";
  }
  return byte_level;
}

Status convert_byte_level(const BpeModel& m, const Vocab& vocab, GgufVocab* v) {
  if (m.byte_fallback) return Status::Error("byte_fallback with a ByteLevel pre-tokenizer is not supported");
  if (m.normalizer != nullptr) {
    auto steps = steps_of(*m.normalizer, "normalizers", "normalizer");
    if (!steps.ok()) return steps.status();
    if (type_of(*m.normalizer) != "Sequence" || !steps->empty()) {
      return Status::Error("normalizer " + describe(m.normalizer) + " is not supported for byte-level BPE (only none)");
    }
  }
  auto name = byte_level_pre(*m.pre, m.ignore_merges);
  if (!name.ok()) return name.status();
  LONGCTX_RETURN_IF_ERROR(byte_level_decoder(m.decoder));
  v->model = "gpt2";
  v->pre = *name;
  v->add_space_prefix = false;
  for (const auto& [l, r] : *m.merges) v->merges.push_back(vocab.text[l] + " " + vocab.text[r]);
  if (m.unk) {  // HF would give unk for a byte without a token; longctx drops the byte
    for (int b = 0; b < 256; ++b) {
      const std::string text = gpt2_bytes_to_text(std::string(1, static_cast<char>(b)));
      if (!vocab.id.count(text)) {
        return Status::Error("model.unk_token with no token for byte " + std::to_string(b) +
                             " is not supported (longctx drops such bytes, as HF does without unk_token)");
      }
    }
  }
  return Status::Ok();
}

}  // namespace longctx::tokenizer::hf_json
