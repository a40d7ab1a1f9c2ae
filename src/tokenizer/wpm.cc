// WordPiece (GGUF tokenizer.ggml.model = "bert"), encoded and decoded exactly as Hugging Face
// `tokenizers` runs a BERT tokenizer.json: normalizer BertNormalizer, pre-tokenizer
// BertPreTokenizer, model WordPiece, decoder WordPiece (prefix "##", cleanup).
//
//   normalizer     clean_text (U+0000, U+FFFD, control/format/private-use characters removed,
//                  whitespace -> ' '), handle_chinese_chars (' ' around each CJK ideograph), then
//                  strip_accents (NFD, nonspacing marks removed) and lowercase (Rust's
//                  char::to_lowercase), as the vocabulary says; character tables in
//                  bert_unicode.h. Bytes that are not UTF-8 count as U+FFFD (removed).
//   pre-tokenizer  split at whitespace; every punctuation character is a piece of its own.
//   WordPiece      per word: more than max_input_chars_per_word characters -> unk; else greedy
//                  longest match from the left, pieces after the first looked up as "##piece";
//                  a word with a position where nothing matches -> one unk.
//
// Differences from HF: the normalizer's NFD is done one character at a time, without the
// canonical reordering of combining marks; only characters that are not nonspacing marks but
// have a combining class (a few dozen Mc, e.g. U+1D165) and meet in non-canonical order could
// come out in another order.
#include <algorithm>

#include "core/check.h"
#include "tokenizer/bert_unicode.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581 '▁'
constexpr std::string_view kPrefix = "##";

Status error(const std::string& msg) { return Status::Error("bpe: " + msg); }

bool is_bracketed(std::string_view t) { return t.size() >= 2 && t.front() == '[' && t.back() == ']'; }

// Decodes UTF-8; a byte that does not start a valid sequence becomes U+FFFD.
std::u32string to_utf32(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    char32_t cp = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
    bool ok = n > 0 && i + n <= s.size();
    for (size_t k = 1; ok && k < n; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      ok = (cc & 0xC0) == 0x80;
      cp = cp << 6 | (cc & 0x3F);
    }
    static constexpr char32_t kMin[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (ok && (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))) ok = false;
    if (!ok) {
      out += U'\xFFFD';
      ++i;
      continue;
    }
    out += cp;
    i += n;
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

// HF's WordPiece decoder cleanup (decoders/wordpiece.rs), applied to each token on its own.
std::string cleanup(std::string s) {
  static const std::pair<std::string_view, std::string_view> kRules[] = {
      {" .", "."},     {" ?", "?"},     {" !", "!"},       {" ,", ","},     {" ' ", "'"},    {" n't", "n't"},
      {" 'm", "'m"},   {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    if (s.find(from) == std::string::npos) continue;
    std::string out;
    size_t pos = 0;
    for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
      out.append(s, pos, hit - pos);
      out.append(to);
    }
    out.append(s, pos);
    s = std::move(out);
  }
  return s;
}

}  // namespace

std::string wpm_gguf_text(std::string_view t) {
  if (is_bracketed(t)) return std::string(t);
  if (t.substr(0, kPrefix.size()) == kPrefix) return std::string(t.substr(kPrefix.size()));
  return std::string(kSpaceMark) + std::string(t);
}

std::string wpm_hf_text(std::string_view t) {
  if (is_bracketed(t)) return std::string(t);
  if (t.substr(0, kSpaceMark.size()) == kSpaceMark) return std::string(t.substr(kSpaceMark.size()));
  return std::string(kPrefix) + std::string(t);
}

Expected<BpeTokenizer> BpeTokenizer::from_gguf_wpm(const GgufVocab& v) {
  const size_t n = v.tokens.size();
  if (v.unk < 0) return error("a bert (WordPiece) vocabulary needs an unknown token (tokenizer.ggml.unknown_token_id)");
  if (v.max_input_chars_per_word < 1) {
    return error("max_input_chars_per_word is " + std::to_string(v.max_input_chars_per_word) + ", not positive");
  }
  BpeTokenizer t;
  t.wpm_ = true;
  t.bos_ = v.bos, t.eos_ = v.eos, t.pad_ = v.pad, t.unk_ = v.unk;
  t.add_bos_ = v.add_bos;
  t.add_eos_ = v.add_eos;
  t.lowercase_ = v.lowercase;
  t.strip_accents_ = v.strip_accents;
  t.max_word_chars_ = v.max_input_chars_per_word;
  t.chat_template_ = v.chat_template;
  t.spm_text_ = v.tokens;
  t.token_bytes_.resize(n);
  t.types_.assign(n, TokenType::kNormal);
  t.byte_id_.fill(-1);
  std::unordered_map<std::string, int32_t> by_hf_text;
  by_hf_text.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = v.tokens[i];
    const int32_t id = static_cast<int32_t>(i);
    if (!v.token_types.empty()) t.types_[i] = static_cast<TokenType>(v.token_types[i]);
    // "" is llama.cpp's form of the token "##" (which WordPiece never produces, but is valid).
    const std::string hf = wpm_hf_text(text);
    auto [it, inserted] = by_hf_text.emplace(hf, id);
    if (!inserted) {
      return error("tokens " + std::to_string(it->second) + " and " + std::to_string(i) + " are both '" + hf + "'");
    }
    switch (t.types_[i]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
        t.special_text_.emplace_back(id, text);
        break;
      case TokenType::kUserDefined:
      case TokenType::kByte:
        return error("token " + std::to_string(i) + " '" + text + "' has type " +
                     std::to_string(static_cast<int>(t.types_[i])) +
                     ", which a bert (WordPiece) vocabulary does not support");
      default:
        // Streaming text: a word-initial token starts a new word.
        t.token_bytes_[i] = hf.substr(0, kPrefix.size()) == kPrefix ? cleanup(hf.substr(kPrefix.size()))
                                                                      : cleanup(" " + hf);
        break;
    }
  }
  std::sort(t.special_text_.begin(), t.special_text_.end());
  t.finish();
  return t;
}

void BpeTokenizer::encode_text_wpm(std::string_view text, std::vector<int32_t>& out) const {
  // BertNormalizer.
  std::u32string norm, tmp;
  norm.reserve(text.size() + 8);
  for (char32_t c : to_utf32(text)) {
    if (bert_unicode::is_control(c)) continue;
    if (bert_unicode::is_space(c)) {
      norm += U' ';
    } else if (bert_unicode::is_chinese(c)) {
      norm += U' ';
      norm += c;
      norm += U' ';
    } else {
      norm += c;
    }
  }
  if (strip_accents_) {
    tmp.clear();
    for (char32_t c : norm) bert_unicode::strip_accents(c, tmp);
    norm.swap(tmp);
  }
  if (lowercase_) {
    tmp.clear();
    for (char32_t c : norm) bert_unicode::lowercase(c, tmp);
    norm.swap(tmp);
  }
  // BertPreTokenizer, then WordPiece on each word.
  std::string word, piece;
  std::vector<size_t> offsets;  // byte offset of each character of `word`, and its end
  const auto flush = [&] {
    if (offsets.empty()) return;
    offsets.push_back(word.size());
    const size_t chars = offsets.size() - 1;
    const size_t old = out.size();
    bool bad = chars > static_cast<size_t>(max_word_chars_);
    for (size_t start = 0; !bad && start < chars;) {
      size_t end = chars;
      int32_t id = -1;
      for (; end > start; --end) {
        piece.assign(start > 0 ? kPrefix : std::string_view());
        piece.append(word, offsets[start], offsets[end] - offsets[start]);
        auto it = whole_piece_id_.find(piece);
        if (it != whole_piece_id_.end()) {
          id = it->second;
          break;
        }
      }
      if (id < 0) {
        bad = true;
      } else {
        out.push_back(id);
        start = end;
      }
    }
    if (bad) {
      out.resize(old);
      out.push_back(unk_);
    }
    word.clear();
    offsets.clear();
  };
  for (char32_t c : norm) {
    if (c == U' ' || bert_unicode::is_space(c)) {
      flush();
    } else if (bert_unicode::is_punct(c)) {
      flush();
      offsets.push_back(0);
      append_utf8(c, word);
      flush();
    } else {
      offsets.push_back(word.size());
      append_utf8(c, word);
    }
  }
  flush();
}

std::string BpeTokenizer::decode_wpm(std::span<const int32_t> ids, bool render_special) const {
  // HF: specials are dropped before the decoder (skip_special_tokens) or go through it as tokens;
  // a token after the first gets a space unless it is a "##" continuation, which loses the
  // prefix; the first keeps its text as it is; then each token is cleaned up on its own.
  std::string out;
  bool first = true;
  for (int32_t id : ids) {
    CHECK(id >= 0 && id < vocab_size());
    const bool special = types_[id] == TokenType::kControl || types_[id] == TokenType::kUnknown;
    if (special && !render_special) continue;
    std::string hf = special ? spm_text_[id] : wpm_hf_text(spm_text_[id]);
    if (!first) {
      if (hf.substr(0, kPrefix.size()) == kPrefix) {
        hf.erase(0, kPrefix.size());
      } else {
        hf.insert(0, " ");
      }
    }
    out += cleanup(std::move(hf));
    first = false;
  }
  return out;
}

}  // namespace longctx::tokenizer
