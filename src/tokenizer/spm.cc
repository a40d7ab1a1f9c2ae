// SentencePiece BPE (GGUF tokenizer.ggml.model = "llama": LLaMA 1/2, Mistral, TinyLlama...),
// encoded as Hugging Face `tokenizers` runs such a vocabulary after converting it
// (LlamaTokenizerFast, legacy): normalizer Prepend("▁") + Replace(" ", "▁") on each run of text
// between special tokens, no pre-tokenizer, BPE with byte_fallback and fuse_unk.
//
// The vocabulary has scores instead of merges. HF's converter (SentencePieceExtractor) makes a
// merge (l, r) for every normal token whose text splits into two tokens l + r, and ranks the
// merges by the merged token's score, highest first (ties: merged id, then l, then r); the BPE
// then runs exactly as for byte-level vocabularies, over characters instead of bytes. A
// character that is no token (and never merges) becomes its UTF-8 bytes' <0xXX> tokens, or one
// unk when a byte token is missing (consecutive unks fused).
#include <algorithm>
#include <cstdio>

#include "core/check.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

constexpr std::string_view kSpaceMark = "\xe2\x96\x81";  // U+2581 '▁'

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Length of the UTF-8 character at s[i]: 1 for an invalid or truncated sequence, so every byte
// belongs to exactly one unit.
size_t utf8_unit(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80                   ? 1
               : (c >= 0xC2 && c <= 0xDF) ? 2
               : (c >= 0xE0 && c <= 0xEF) ? 3
               : (c >= 0xF0 && c <= 0xF4) ? 4
                                          : 1;
  if (i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k) {
    if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return 1;
  }
  if (len == 3) {  // no overlong forms or surrogates
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return 1;
  } else if (len == 4) {
    const unsigned char c1 = static_cast<unsigned char>(s[i + 1]);
    if ((c == 0xF0 && c1 < 0x90) || (c == 0xF4 && c1 >= 0x90)) return 1;
  }
  return len;
}

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string_view::npos; pos = hit + from.size()) {
    out.append(s.substr(pos, hit - pos));
    out.append(to);
  }
  out.append(s.substr(pos));
  return out;
}

// "<0x0A>" -> 10; -1 when the text is not a byte token.
int parse_byte_token(std::string_view text) {
  if (text.size() != 6 || text.substr(0, 3) != "<0x" || text[5] != '>') return -1;
  int value = 0;
  for (char c : text.substr(3, 2)) {
    const int d = (c >= '0' && c <= '9')   ? c - '0'
                  : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                  : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                                           : -1;
    if (d < 0) return -1;
    value = value * 16 + d;
  }
  return value;
}

Status error(const std::string& msg) { return Status::Error("bpe: " + msg); }

}  // namespace

Expected<BpeTokenizer> BpeTokenizer::from_gguf_spm(const GgufVocab& v) {
  const size_t n = v.tokens.size();
  if (!v.scores.empty() && v.scores.size() != n) {
    return error(std::to_string(v.scores.size()) + " scores for " + std::to_string(n) + " tokens");
  }
  BpeTokenizer t;
  t.spm_ = true;
  t.bos_ = v.bos, t.eos_ = v.eos, t.pad_ = v.pad, t.unk_ = v.unk;
  t.add_bos_ = v.add_bos;
  t.add_eos_ = v.add_eos;
  t.add_space_prefix_ = v.add_space_prefix;
  t.chat_template_ = v.chat_template;
  t.spm_text_ = v.tokens;
  t.scores_ = v.scores.empty() ? std::vector<float>(n, 0.0f) : v.scores;
  t.token_bytes_.resize(n);
  t.types_.assign(n, TokenType::kNormal);
  t.byte_id_.fill(-1);
  std::unordered_map<std::string_view, int32_t> by_text;
  by_text.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = v.tokens[i];
    const int32_t id = static_cast<int32_t>(i);
    if (!v.token_types.empty()) t.types_[i] = static_cast<TokenType>(v.token_types[i]);
    if (text.empty()) return error("token " + std::to_string(i) + " is empty");
    if (!by_text.emplace(text, id).second) {
      return error("tokens " + std::to_string(by_text[text]) + " and " + std::to_string(i) +
                   " are both '" + text + "'");
    }
    switch (t.types_[i]) {
      case TokenType::kByte: {
        const int b = parse_byte_token(text);
        if (b < 0)
          return error("byte token " + std::to_string(i) + " '" + text + "' is not <0xXX>");
        t.byte_id_[b] = id;
        t.token_bytes_[i] = std::string(1, static_cast<char>(b));
        break;
      }
      case TokenType::kControl:
      case TokenType::kUnknown:
        t.special_text_.emplace_back(id, text);
        break;
      case TokenType::kUserDefined:
        t.special_text_.emplace_back(id, text);
        t.token_bytes_[i] = replace_all(text, kSpaceMark, " ");
        break;
      default:
        t.token_bytes_[i] = replace_all(text, kSpaceMark, " ");
        break;
    }
  }
  if (t.unk_ < 0) {
    for (int b = 0; b < 256; ++b) {
      if (t.byte_id_[b] < 0) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        return error(std::string("no byte token ") + name + " and no unk token");
      }
    }
  }

  // Merges from the scores (see the top of this file).
  struct Candidate {
    float score;
    int32_t result, left, right;
  };
  std::vector<Candidate> candidates;
  for (size_t i = 0; i < n; ++i) {
    if (t.types_[i] != TokenType::kNormal) continue;
    const std::string_view text = v.tokens[i];
    for (size_t cut = utf8_unit(text, 0); cut < text.size(); cut += utf8_unit(text, cut)) {
      auto l = by_text.find(text.substr(0, cut));
      auto r = by_text.find(text.substr(cut));
      if (l == by_text.end() || r == by_text.end()) continue;
      if (t.types_[l->second] != TokenType::kNormal || t.types_[r->second] != TokenType::kNormal) {
        continue;
      }
      candidates.push_back({t.scores_[i], static_cast<int32_t>(i), l->second, r->second});
    }
  }
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.result != b.result) return a.result < b.result;
    return a.left != b.left ? a.left < b.left : a.right < b.right;
  });
  for (const Candidate& c : candidates) {
    if (t.merge_rank_.emplace(pair_key(c.left, c.right), static_cast<int32_t>(t.merges_.size()))
            .second) {
      t.merges_.push_back({c.left, c.right, c.result});
    }
  }
  std::sort(t.special_text_.begin(), t.special_text_.end());
  t.finish();
  return t;
}

void BpeTokenizer::encode_text_spm(std::string_view text, std::vector<int32_t>& out) const {
  std::string norm = add_space_prefix_ ? std::string(kSpaceMark) : std::string();
  norm += replace_all(text, " ", kSpaceMark);
  std::vector<int32_t> ids;
  std::vector<std::pair<uint32_t, uint32_t>> units;  // byte span of each initial symbol
  for (size_t i = 0; i < norm.size();) {
    const size_t len = utf8_unit(norm, i);
    auto it = whole_piece_id_.find(norm.substr(i, len));
    ids.push_back(it == whole_piece_id_.end() ? -1 : it->second);
    units.emplace_back(static_cast<uint32_t>(i), static_cast<uint32_t>(len));
    i += len;
  }
  apply_merges(ids);
  bool last_unk = false;
  for (size_t k = 0; k < ids.size(); ++k) {
    if (ids[k] == kMerged) continue;
    if (ids[k] >= 0) {
      out.push_back(ids[k]);
      last_unk = false;
      continue;
    }
    const auto [begin, len] = units[k];
    bool all_bytes = true;
    for (uint32_t j = 0; j < len; ++j) {
      all_bytes = all_bytes && byte_id_[static_cast<unsigned char>(norm[begin + j])] >= 0;
    }
    if (all_bytes) {
      for (uint32_t j = 0; j < len; ++j) {
        out.push_back(byte_id_[static_cast<unsigned char>(norm[begin + j])]);
      }
      last_unk = false;
    } else if (!last_unk) {
      CHECK(unk_ >= 0);  // from_gguf_spm requires every byte token when there is no unk
      out.push_back(unk_);
      last_unk = true;
    }
  }
}

}  // namespace longctx::tokenizer
