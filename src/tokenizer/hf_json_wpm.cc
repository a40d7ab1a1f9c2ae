// tokenizer.json of a WordPiece model (BERT and its kin) -> GgufVocab model "bert" (hf_json.h):
// BertNormalizer, BertPreTokenizer, WordPiece decoder, [CLS] $A [SEP] post-processor.
#include <string>
#include <vector>

#include "tokenizer/hf_json_internal.h"

namespace longctx::tokenizer::hf_json {
namespace {

// BertNormalizer: clean_text and handle_chinese_chars must be on (GGUF has no key for them, and
// every BERT tokenizer has them); lowercase and strip_accents (null: = lowercase) are stored.
Status bert_normalizer(const Json* n, GgufVocab* v) {
  const std::string expected = " (WordPiece needs a BertNormalizer with clean_text and handle_chinese_chars)";
  if (n == nullptr) return Status::Error("no normalizer is not supported" + expected);
  if (type_of(*n) != "BertNormalizer") {
    return Status::Error("normalizer " + describe(n) + " is not supported" + expected);
  }
  bool clean_text = true, chinese = true, lowercase = true;
  const std::string where = "normalizer BertNormalizer";
  LONGCTX_RETURN_IF_ERROR(read_bool(*n, "clean_text", &clean_text, where));
  LONGCTX_RETURN_IF_ERROR(read_bool(*n, "handle_chinese_chars", &chinese, where));
  LONGCTX_RETURN_IF_ERROR(read_bool(*n, "lowercase", &lowercase, where));
  bool strip = lowercase;  // HF: strip_accents null follows lowercase
  LONGCTX_RETURN_IF_ERROR(read_bool(*n, "strip_accents", &strip, where));
  if (!clean_text || !chinese) {
    return Status::Error("normalizer " + describe(n) + ": clean_text=false or handle_chinese_chars=false is not supported" +
                         expected);
  }
  v->lowercase = lowercase;
  v->strip_accents = strip;
  return Status::Ok();
}

// The ids of a TemplateProcessing special token (its special_tokens entry, or the token of that
// text), which must be one token.
Expected<int32_t> template_token(const Json& proc, const Json& piece, const Vocab& vocab) {
  const Json* st = member(piece, "SpecialToken");
  if (st == nullptr) return Status::Error("not a SpecialToken");
  auto name = read_string(*st, "id", "post_processor TemplateProcessing SpecialToken");
  if (!name.ok()) return name.status();
  if (!name->has_value()) return Status::Error("post_processor TemplateProcessing has a SpecialToken without id");
  const Json* specials = member(proc, "special_tokens");
  const Json* entry = specials != nullptr ? member(*specials, (*name)->c_str()) : nullptr;
  const Json* ids = entry != nullptr ? member(*entry, "ids") : nullptr;
  if (ids != nullptr) {
    if (!ids->is_array() || ids->size() != 1 || !as_int((*ids)[0])) {
      return Status::Error("post_processor: special token " + quote(**name) + " is not one token id");
    }
    const int64_t id = *as_int((*ids)[0]);
    if (id < 0 || id >= static_cast<int64_t>(vocab.text.size())) {
      return Status::Error("post_processor: special token " + quote(**name) + " has id " + std::to_string(id) +
                           ", outside the vocabulary");
    }
    return static_cast<int32_t>(id);
  }
  auto it = vocab.id.find(**name);
  if (it == vocab.id.end()) return Status::Error("post_processor: special token " + quote(**name) + " is not a token");
  return it->second;
}

// The post-processor: TemplateProcessing whose single is [SpecialToken, $A, SpecialToken], or
// BertProcessing {cls, sep}: bos and eos, both added. None: neither.
Status bert_post_processor(const Json* post, const Vocab& vocab, GgufVocab* v) {
  v->add_bos = v->add_eos = false;
  if (post == nullptr) return Status::Ok();
  const Status bad = Status::Error("post_processor " + describe(post) +
                                   " is not supported for WordPiece (expected TemplateProcessing with single "
                                   "[CLS] $A [SEP], or BertProcessing)");
  const std::string type = type_of(*post);
  if (type == "BertProcessing") {
    int32_t ids[2];
    const char* keys[2] = {"cls", "sep"};
    for (int k = 0; k < 2; ++k) {
      const Json* p = member(*post, keys[k]);
      if (p == nullptr || !p->is_array() || p->size() != 2 || !(*p)[0].is_string() || !as_int((*p)[1])) return bad;
      auto it = vocab.id.find((*p)[0].get<std::string>());
      if (it == vocab.id.end() || it->second != *as_int((*p)[1])) {
        return Status::Error("post_processor BertProcessing: " + std::string(keys[k]) + " " + clip(dump(*p), 60) +
                             " is not a token with that id");
      }
      ids[k] = it->second;
    }
    v->bos = ids[0], v->eos = ids[1];
    v->add_bos = v->add_eos = true;
    return Status::Ok();
  }
  if (type != "TemplateProcessing") return bad;
  const Json* single = member(*post, "single");
  if (single == nullptr || !single->is_array() || single->size() != 3) return bad;
  const Json* seq = member((*single)[1], "Sequence");
  if (seq == nullptr || !string_member_is(*seq, "id", "A")) return bad;
  auto first = template_token(*post, (*single)[0], vocab);
  if (!first.ok()) return first.status().message() == "not a SpecialToken" ? bad : first.status();
  auto last = template_token(*post, (*single)[2], vocab);
  if (!last.ok()) return last.status().message() == "not a SpecialToken" ? bad : last.status();
  v->bos = *first, v->eos = *last;
  v->add_bos = v->add_eos = true;
  return Status::Ok();
}

}  // namespace

Status convert_wpm(const Json& root, const Json& model, Vocab& vocab, GgufVocab* v) {
  auto prefix = read_string(model, "continuing_subword_prefix", "model");
  if (!prefix.ok()) return prefix.status();
  if (prefix->value_or("##") != "##") {
    return Status::Error("model.continuing_subword_prefix " + quote(**prefix) + " is not supported (only \"##\")");
  }
  if (const Json* m = member(model, "max_input_chars_per_word")) {
    const std::optional<int64_t> n = as_int(*m);
    if (!n || *n < 1 || *n > (1 << 30)) {
      return Status::Error("model.max_input_chars_per_word is " + clip(dump(*m), 30) + ", not a positive integer");
    }
    v->max_input_chars_per_word = static_cast<int32_t>(*n);
  }
  auto unk = read_string(model, "unk_token", "model");
  if (!unk.ok()) return unk.status();
  if (!unk->has_value()) return Status::Error("model.unk_token is missing (WordPiece needs one)");
  auto unk_it = vocab.id.find(**unk);
  if (unk_it == vocab.id.end()) return Status::Error("model.unk_token " + quote(**unk) + " is not a token");

  LONGCTX_RETURN_IF_ERROR(bert_normalizer(member(root, "normalizer"), v));
  const Json* pre = member(root, "pre_tokenizer");
  if (pre == nullptr || type_of(*pre) != "BertPreTokenizer") {
    return Status::Error("pre-tokenizer " + describe(pre) + " is not supported for WordPiece (only BertPreTokenizer)");
  }
  const Json* decoder = member(root, "decoder");
  bool cleanup = true;
  if (decoder != nullptr && type_of(*decoder) == "WordPiece") {
    LONGCTX_RETURN_IF_ERROR(read_bool(*decoder, "cleanup", &cleanup, "decoder WordPiece"));
  }
  if (decoder == nullptr || type_of(*decoder) != "WordPiece" || !string_member_is(*decoder, "prefix", "##") ||
      !cleanup) {
    return Status::Error("decoder " + describe(decoder) +
                         " is not supported for WordPiece (expected WordPiece(prefix=\"##\", cleanup=true))");
  }
  LONGCTX_RETURN_IF_ERROR(bert_post_processor(member(root, "post_processor"), vocab, v));

  for (size_t i = 0; i < vocab.added.size(); ++i) {
    const std::string& text = vocab.text[vocab.added[i]];
    if (vocab.type[vocab.added[i]] != static_cast<int32_t>(TokenType::kControl)) {
      return Status::Error("added token " + quote(text) +
                           " is not special, which is not supported for WordPiece (only special added tokens)");
    }
    if (vocab.added_normalized[i]) {
      return Status::Error("added token " + quote(text) + " is normalized, which is not supported for WordPiece");
    }
  }
  // The GGUF form (llama.cpp's): "▁word", "piece" for "##piece", "[...]" as it is.
  for (size_t i = 0; i < vocab.text.size(); ++i) {
    std::string g = wpm_gguf_text(vocab.text[i]);
    if (wpm_hf_text(g) != vocab.text[i]) {
      return Status::Error("token " + quote(vocab.text[i]) +
                           " has no GGUF form (a \"##[...]\" token would read back as \"[...]\")");
    }
    vocab.text[i] = std::move(g);
  }
  v->model = "bert";
  v->pre = "";
  v->unk = unk_it->second;
  return Status::Ok();
}

}  // namespace longctx::tokenizer::hf_json
