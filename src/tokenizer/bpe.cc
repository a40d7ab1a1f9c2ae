// BpeTokenizer: encoding, decoding and the GGUF "gpt2" convention. Training is in bpe_train.cc.
#include "tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/check.h"
#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer {
namespace {

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// GPT-2's bytes_to_unicode (openai/gpt-2 encoder.py): bytes that are printable on their own
// ('!'..'~', '¡'..'¬', '®'..'ÿ') keep their code point; the other 68 get 256, 257, ... in byte
// order, so no token string contains a space or a control character.
struct Gpt2Alphabet {
  std::array<uint16_t, 256> byte_to_cp{};
  std::array<int16_t, 324> cp_to_byte{};  // 324 = 256 + 68; -1 where no byte maps

  Gpt2Alphabet() {
    cp_to_byte.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool keeps = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      byte_to_cp[b] = static_cast<uint16_t>(keeps ? b : next++);
      cp_to_byte[byte_to_cp[b]] = static_cast<int16_t>(b);
    }
    CHECK(next == 324);
  }
};

const Gpt2Alphabet& alphabet() {
  static const Gpt2Alphabet a;
  return a;
}

std::string quote(std::string_view s) {
  constexpr size_t kMax = 40;
  std::string q = "'";
  q.append(s.substr(0, kMax));
  if (s.size() > kMax) q += "...";
  return q + "'";
}

}  // namespace

std::string gpt2_bytes_to_text(std::string_view bytes) {
  const Gpt2Alphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    const uint16_t cp = a.byte_to_cp[b];  // < 0x800, so one or two UTF-8 bytes
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return out;
}

Expected<std::string> gpt2_text_to_bytes(std::string_view text) {
  const Gpt2Alphabet& a = alphabet();
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    uint32_t cp = 0;
    size_t len = 0;
    if (c < 0x80) {
      cp = c, len = 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
      cp = c & 0x1F, len = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      cp = c & 0x0F, len = 3;
    } else if (c >= 0xF0 && c <= 0xF4) {
      cp = c & 0x07, len = 4;
    } else {
      return Status::Error("invalid UTF-8 byte 0x" + [&] {
        char buf[3];
        std::snprintf(buf, sizeof buf, "%02X", c);
        return std::string(buf);
      }() + " at offset " + std::to_string(i));
    }
    if (i + len > text.size()) {
      return Status::Error("truncated UTF-8 sequence at offset " + std::to_string(i));
    }
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) {
        return Status::Error("invalid UTF-8 sequence at offset " + std::to_string(i));
      }
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp >= a.cp_to_byte.size() || a.cp_to_byte[cp] < 0) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "U+%04X", cp);
      return Status::Error(std::string("character ") + buf + " is not in GPT-2's byte alphabet");
    }
    out += static_cast<char>(a.cp_to_byte[cp]);
    i += len;
  }
  return out;
}

int32_t BpeTokenizer::merge_rank(int32_t left, int32_t right) const {
  auto it = merge_rank_.find(pair_key(left, right));
  return it == merge_rank_.end() ? -1 : it->second;
}

void BpeTokenizer::index_merges() {
  merge_rank_.clear();
  merge_rank_.reserve(merges_.size());
  for (size_t r = 0; r < merges_.size(); ++r) {
    merge_rank_.emplace(pair_key(merges_[r].left, merges_[r].right), static_cast<int32_t>(r));
  }
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  const int32_t n = static_cast<int32_t>(piece.size());
  if (n == 1) {
    out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
    return;
  }
  // Symbols in a doubly linked list over the piece's byte positions; a merge keeps the left
  // symbol and unlinks the right one. The heap pops the lowest rank first and, within a rank,
  // the leftmost position, which is exactly "apply merges in rank order, each left to right
  // without overlap" as training did. Entries go stale when a neighbour changes; they are
  // recognised because the pair at their position no longer matches their rank. This keeps a
  // long piece (a megabyte of letters) at O(n log n) instead of O(n^2).
  struct Symbol {
    int32_t id;
    int32_t prev;
    int32_t next;
  };
  struct Candidate {
    int32_t rank;
    int32_t pos;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Symbol> sym(n);
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(
      std::greater<Candidate>(), std::move(heap_storage));
  for (int32_t i = 0; i < n; ++i) {
    sym[i] = {byte_id_[static_cast<unsigned char>(piece[i])], i - 1, i + 1 < n ? i + 1 : -1};
  }
  for (int32_t i = 0; i + 1 < n; ++i) {
    const int32_t r = merge_rank(sym[i].id, sym[i + 1].id);
    if (r >= 0) heap.push({r, i});
  }
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& left = sym[c.pos];
    if (left.id < 0 || left.next < 0) continue;
    Symbol& right = sym[left.next];
    const Merge& m = merges_[c.rank];
    if (left.id != m.left || right.id != m.right) continue;  // stale
    left.id = m.result;
    right.id = -1;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = c.pos;
    if (left.prev >= 0) {
      const int32_t r = merge_rank(sym[left.prev].id, left.id);
      if (r >= 0) heap.push({r, left.prev});
    }
    if (left.next >= 0) {
      const int32_t r = merge_rank(left.id, sym[left.next].id);
      if (r >= 0) heap.push({r, c.pos});
    }
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

void BpeTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out) const {
  // Natural text repeats its words, so each distinct piece is merged once per call and later
  // copies come from where its ids already sit in `out`: piece -> (offset, count).
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  for_each_piece(text, [&](std::string_view piece) {
    if (piece.size() == 1) {
      out.push_back(byte_id_[static_cast<unsigned char>(piece[0])]);
      return;
    }
    auto [it, inserted] = seen.try_emplace(piece);
    if (!inserted) {
      const auto [offset, count] = it->second;
      const size_t old = out.size();
      out.resize(old + count);
      std::copy(out.begin() + offset, out.begin() + offset + count, out.begin() + old);
      return;
    }
    const size_t old = out.size();
    encode_piece(piece, out);
    it->second = {old, out.size() - old};
  });
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  encode_append(text, out);
  return out;
}

const std::string& BpeTokenizer::token_bytes(int32_t id) const {
  CHECK_MSG(id >= 0 && id < vocab_size(), "token id outside the vocabulary");
  return token_bytes_[id];
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id);
  return out;
}

Expected<std::string> BpeTokenizer::decode_checked(std::span<const int32_t> ids) const {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size()) {
      return Status::Error("bpe: token id " + std::to_string(ids[i]) + " at position " +
                           std::to_string(i) + " is outside the vocabulary [0, " +
                           std::to_string(vocab_size()) + ")");
    }
    out += token_bytes_[ids[i]];
  }
  return out;
}

std::vector<std::string> BpeTokenizer::gguf_tokens() const {
  std::vector<std::string> tokens(token_bytes_.size());
  for (size_t i = 0; i < token_bytes_.size(); ++i) {
    if (!is_special(static_cast<int32_t>(i))) tokens[i] = gpt2_bytes_to_text(token_bytes_[i]);
  }
  for (const auto& [id, text] : special_text_) tokens[id] = text;
  return tokens;
}

std::vector<std::string> BpeTokenizer::gguf_merges() const {
  std::vector<std::string> out;
  out.reserve(merges_.size());
  for (const Merge& m : merges_) {
    out.push_back(gpt2_bytes_to_text(token_bytes_[m.left]) + " " +
                  gpt2_bytes_to_text(token_bytes_[m.right]));
  }
  return out;
}

std::vector<int32_t> BpeTokenizer::gguf_token_types() const {
  constexpr int32_t kNormal = 1, kControl = 3;  // llama.cpp's LLAMA_TOKEN_TYPE_*
  std::vector<int32_t> types(token_bytes_.size(), kNormal);
  for (int32_t id : {bos_, eos_, pad_}) types[id] = kControl;
  return types;
}

Expected<BpeTokenizer> BpeTokenizer::from_gguf(const std::vector<std::string>& tokens,
                                               const std::vector<std::string>& merges, int32_t bos,
                                               int32_t eos, int32_t pad) {
  const auto error = [](const std::string& msg) { return Status::Error("bpe: " + msg); };
  const size_t n = tokens.size();
  if (n == 0) return error("the vocabulary is empty");
  if (n > static_cast<size_t>(kMaxVocabSize)) {
    return error("vocabulary of " + std::to_string(n) + " tokens exceeds the limit of " +
                 std::to_string(kMaxVocabSize));
  }
  const std::pair<const char*, int32_t> specials[] = {{"bos", bos}, {"eos", eos}, {"pad", pad}};
  for (const auto& [name, id] : specials) {
    if (id < 0 || static_cast<size_t>(id) >= n) {
      return error(std::string(name) + " id " + std::to_string(id) +
                   " is outside the vocabulary [0, " + std::to_string(n) + ")");
    }
  }

  BpeTokenizer t;
  t.bos_ = bos, t.eos_ = eos, t.pad_ = pad;
  t.token_bytes_.resize(n);
  t.byte_id_.fill(-1);
  std::unordered_map<std::string_view, int32_t> by_text;
  by_text.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = tokens[i];
    const int32_t id = static_cast<int32_t>(i);
    if (text.empty()) return error("token " + std::to_string(i) + " is empty");
    auto [it, inserted] = by_text.emplace(text, id);
    if (!inserted) {
      return error("tokens " + std::to_string(it->second) + " and " + std::to_string(i) +
                   " are both " + quote(text));
    }
    Expected<std::string> bytes = gpt2_text_to_bytes(text);
    if (t.is_special(id)) {
      // A special that is also a byte token would make that byte unencodable.
      if (bytes.ok() && bytes.value().size() == 1) {
        return error("special token " + std::to_string(i) + " " + quote(text) +
                     " is a single-byte token");
      }
      t.special_text_.emplace_back(id, text);
      continue;
    }
    if (!bytes.ok())
      return bytes.status().Wrap("bpe: token " + std::to_string(i) + " " + quote(text));
    t.token_bytes_[i] = std::move(bytes.value());
    if (t.token_bytes_[i].size() == 1)
      t.byte_id_[static_cast<unsigned char>(t.token_bytes_[i][0])] = id;
  }
  for (int b = 0; b < 256; ++b) {
    if (t.byte_id_[b] < 0) {
      return error("no token for byte " + std::to_string(b) + " (" +
                   quote(gpt2_bytes_to_text(std::string(1, static_cast<char>(b)))) + ")");
    }
  }

  t.merges_.reserve(merges.size());
  t.merge_rank_.reserve(merges.size());
  for (size_t r = 0; r < merges.size(); ++r) {
    const std::string& m = merges[r];
    const std::string where = "merge " + std::to_string(r) + " " + quote(m);
    const size_t space = m.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == m.size() ||
        m.find(' ', space + 1) != std::string::npos) {
      return error(where + " is not two tokens separated by one space");
    }
    const std::string_view left_text = std::string_view(m).substr(0, space);
    const std::string_view right_text = std::string_view(m).substr(space + 1);
    const std::string joined = std::string(left_text) + std::string(right_text);
    int32_t ids[3];
    const std::string_view parts[3] = {left_text, right_text, joined};
    const char* roles[3] = {"left side", "right side", "joined result"};
    for (int k = 0; k < 3; ++k) {
      auto it = by_text.find(parts[k]);
      if (it == by_text.end()) {
        return error(where + ": " + roles[k] + " " + quote(parts[k]) + " is not a token");
      }
      if (t.is_special(it->second)) {
        return error(where + ": " + roles[k] + " is the special token " +
                     std::to_string(it->second));
      }
      ids[k] = it->second;
    }
    auto [it, inserted] = t.merge_rank_.emplace(pair_key(ids[0], ids[1]), static_cast<int32_t>(r));
    if (!inserted) return error(where + " repeats merge " + std::to_string(it->second));
    t.merges_.push_back({ids[0], ids[1], ids[2]});
  }
  return t;
}

}  // namespace longctx::tokenizer
