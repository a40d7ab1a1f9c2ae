// BpeTokenizer::from_gguf: building a tokenizer from GGUF tokenizer keys, validating everything
// (a vocabulary comes from a file, so every problem is a Status naming the token or merge).
// The SentencePiece ("llama") half is in spm.cc.
#include <algorithm>

#include "core/check.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

std::string quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string q = "'";
  q.append(s.substr(0, kMax));
  if (s.size() > kMax) q += "...";
  return q + "'";
}

Status error(const std::string& msg) { return Status::Error("bpe: " + msg); }

}  // namespace

Expected<BpeTokenizer> BpeTokenizer::from_gguf(const std::vector<std::string>& tokens,
                                               const std::vector<std::string>& merges, int32_t bos,
                                               int32_t eos, int32_t pad) {
  if (tokens.empty()) return error("the vocabulary is empty");
  const std::pair<const char*, int32_t> specials[] = {{"bos", bos}, {"eos", eos}, {"pad", pad}};
  for (const auto& [name, id] : specials) {
    if (id < 0 || static_cast<size_t>(id) >= tokens.size()) {
      return error(std::string(name) + " id " + std::to_string(id) +
                   " is outside the vocabulary [0, " + std::to_string(tokens.size()) + ")");
    }
  }
  GgufVocab v;
  v.tokens = tokens;
  v.merges = merges;
  v.bos = bos, v.eos = eos, v.pad = pad;
  v.token_types.assign(tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (int32_t id : {bos, eos, pad}) v.token_types[id] = static_cast<int32_t>(TokenType::kControl);
  return from_gguf(v);
}

Expected<BpeTokenizer> BpeTokenizer::from_gguf(const GgufVocab& v) {
  const size_t n = v.tokens.size();
  if (v.model != "gpt2" && v.model != "llama" && v.model != "bert") {
    return error("tokenizer model '" + v.model + "' is not supported (expected gpt2, llama or bert)");
  }
  if (n == 0) return error("the vocabulary is empty");
  if (n > static_cast<size_t>(kMaxVocabSize)) {
    return error("vocabulary of " + std::to_string(n) + " tokens exceeds the limit of " +
                 std::to_string(kMaxVocabSize));
  }
  if (!v.token_types.empty() && v.token_types.size() != n) {
    return error(std::to_string(v.token_types.size()) + " token types for " + std::to_string(n) +
                 " tokens");
  }
  for (size_t i = 0; i < v.token_types.size(); ++i) {
    if (v.token_types[i] < 0 || v.token_types[i] > static_cast<int32_t>(TokenType::kByte)) {
      return error("token " + std::to_string(i) + " has the unknown type " +
                   std::to_string(v.token_types[i]));
    }
  }
  const std::pair<const char*, int32_t> ids[] = {
      {"bos", v.bos}, {"eos", v.eos}, {"pad", v.pad}, {"unk", v.unk}};
  for (const auto& [name, id] : ids) {
    if (id < -1 || id >= static_cast<int64_t>(n)) {
      return error(std::string(name) + " id " + std::to_string(id) +
                   " is outside the vocabulary [0, " + std::to_string(n) + ")");
    }
  }
  if (v.model == "llama") return from_gguf_spm(v);
  if (v.model == "bert") return from_gguf_wpm(v);

  BpeTokenizer t;
  Expected<PreTokenizer> pre = PreTokenizer::by_name(v.pre);
  if (!pre.ok()) return error(pre.status().message());
  t.pre_ = std::move(pre.value());
  t.bos_ = v.bos, t.eos_ = v.eos, t.pad_ = v.pad, t.unk_ = v.unk;
  t.add_bos_ = v.add_bos;
  t.add_eos_ = v.add_eos;
  t.chat_template_ = v.chat_template;
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
    auto [it, inserted] = by_text.emplace(text, id);
    if (!inserted) {
      return error("tokens " + std::to_string(it->second) + " and " + std::to_string(i) +
                   " are both " + quote(text));
    }
    const TokenType type = t.types_[i];
    Expected<std::string> bytes = gpt2_text_to_bytes(text);
    if (type == TokenType::kControl || type == TokenType::kUnknown ||
        type == TokenType::kUserDefined) {
      // A special that is also a byte token would make that byte unencodable.
      if (bytes.ok() && bytes.value().size() == 1) {
        return error("special token " + std::to_string(i) + " " + quote(text) +
                     " is a single-byte token");
      }
      // Control (and unknown) tokens decode to nothing; user-defined ones are raw text, not
      // byte-mapped (HF's added tokens, llama.cpp's token_to_piece).
      if (type == TokenType::kUserDefined) t.token_bytes_[i] = text;
      t.special_text_.emplace_back(id, text);
      continue;
    }
    if (!bytes.ok()) {
      return bytes.status().Wrap("bpe: token " + std::to_string(i) + " " + quote(text));
    }
    t.token_bytes_[i] = std::move(bytes.value());
    if (t.token_bytes_[i].size() == 1) {
      t.byte_id_[static_cast<unsigned char>(t.token_bytes_[i][0])] = id;
    }
  }
  // Our own tokenizers hold every byte; real vocabularies may lack a few (HF then drops those
  // bytes from the input, and so does encode), so only "longctx" requires all 256.
  for (int b = 0; b < 256 && t.pre_.name() == "longctx"; ++b) {
    if (t.byte_id_[b] < 0) {
      return error("no token for byte " + std::to_string(b) + " (" +
                   quote(gpt2_bytes_to_text(std::string(1, static_cast<char>(b)))) + ")");
    }
  }

  t.merges_.reserve(v.merges.size());
  t.merge_rank_.reserve(v.merges.size());
  std::string joined;
  for (size_t r = 0; r < v.merges.size(); ++r) {
    const std::string& m = v.merges[r];
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
        m.find(' ', space + 1) != std::string::npos) {
      return error("merge " + std::to_string(r) + " " + quote(m) +
                   " is not two tokens separated by one space");
    }
    const std::string_view left_text = std::string_view(m).substr(0, space);
    const std::string_view right_text = std::string_view(m).substr(space + 1);
    joined.assign(left_text);
    joined.append(right_text);
    int32_t parts_id[3];
    const std::string_view parts[3] = {left_text, right_text, joined};
    const char* roles[3] = {"left side", "right side", "joined result"};
    for (int k = 0; k < 3; ++k) {
      auto it = by_text.find(parts[k]);
      if (it == by_text.end()) {
        return error("merge " + std::to_string(r) + " " + quote(m) + ": " + roles[k] + " " +
                     quote(parts[k]) + " is not a token");
      }
      const TokenType type = t.types_[it->second];
      if (type == TokenType::kControl || type == TokenType::kUnknown ||
          type == TokenType::kUserDefined) {
        return error("merge " + std::to_string(r) + " " + quote(m) + ": " + roles[k] +
                     " is the special token " + std::to_string(it->second));
      }
      parts_id[k] = it->second;
    }
    auto [it, inserted] =
        t.merge_rank_.emplace(pair_key(parts_id[0], parts_id[1]), static_cast<int32_t>(r));
    if (!inserted) {
      return error("merge " + std::to_string(r) + " " + quote(m) + " repeats merge " +
                   std::to_string(it->second));
    }
    t.merges_.push_back({parts_id[0], parts_id[1], parts_id[2]});
  }
  std::sort(t.special_text_.begin(), t.special_text_.end());
  t.finish();
  return t;
}

}  // namespace longctx::tokenizer
