// BpeTokenizer: GPT-2's byte alphabet, encoding, decoding and the export of the GGUF keys.
// Loading a vocabulary is in bpe_vocab.cc, SentencePiece encoding in spm.cc, training in
// bpe_train.cc.
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

TokenType BpeTokenizer::token_type(int32_t id) const {
  CHECK_MSG(id >= 0 && id < vocab_size(), "token id outside the vocabulary");
  return types_[id];
}

void BpeTokenizer::finish() {
  if (types_.empty()) {
    types_.assign(token_bytes_.size(), TokenType::kNormal);
    for (const auto& [id, text] : special_text_) types_[id] = TokenType::kControl;
  }
  std::vector<SpecialTokenMatcher::Entry> entries;
  for (const auto& [id, text] : special_text_) {
    entries.push_back({text, id, types_[id] != TokenType::kUserDefined});
  }
  specials_ = SpecialTokenMatcher(std::move(entries));
  whole_piece_id_.clear();
  if (wpm_) {
    // HF's WordPiece vocabulary holds every token, specials too.
    for (int32_t id = 0; id < vocab_size(); ++id) whole_piece_id_.emplace(wpm_hf_text(spm_text_[id]), id);
  } else if (spm_ || pre_.ignore_merges()) {
    for (int32_t id = 0; id < vocab_size(); ++id) {
      if (types_[id] == TokenType::kNormal) {
        whole_piece_id_.emplace(spm_ ? spm_text_[id] : token_bytes_[id], id);
      }
    }
  }
}

void BpeTokenizer::apply_merges(std::span<int32_t> ids) const {
  const int32_t n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  // Symbols in a doubly linked list over the slots; a merge keeps the left symbol and unlinks
  // the right one. The heap pops the lowest rank first and, within a rank, the leftmost
  // position, which is exactly "apply merges in rank order, each left to right without overlap"
  // as training did (and as HF's BPE::merge_word and llama.cpp do). Entries go stale when a
  // neighbour changes; they are recognised because the pair at their position no longer matches
  // their rank. This keeps a long piece (a megabyte of letters) at O(n log n) instead of O(n^2).
  struct Link {
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
  std::vector<Link> link(n);
  std::vector<Candidate> heap_storage;
  heap_storage.reserve(n);
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap(
      std::greater<Candidate>(), std::move(heap_storage));
  for (int32_t i = 0; i < n; ++i) link[i] = {i - 1, i + 1 < n ? i + 1 : -1};
  for (int32_t i = 0; i + 1 < n; ++i) {
    const int32_t r = merge_rank(ids[i], ids[i + 1]);
    if (r >= 0) heap.push({r, i});
  }
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int32_t right = link[c.pos].next;
    if (ids[c.pos] == kMerged || right < 0) continue;
    const Merge& m = merges_[c.rank];
    if (ids[c.pos] != m.left || ids[right] != m.right) continue;  // stale
    ids[c.pos] = m.result;
    ids[right] = kMerged;
    link[c.pos].next = link[right].next;
    if (link[c.pos].next >= 0) link[link[c.pos].next].prev = c.pos;
    if (const int32_t prev = link[c.pos].prev; prev >= 0) {
      const int32_t r = merge_rank(ids[prev], ids[c.pos]);
      if (r >= 0) heap.push({r, prev});
    }
    if (const int32_t next = link[c.pos].next; next >= 0) {
      const int32_t r = merge_rank(ids[c.pos], ids[next]);
      if (r >= 0) heap.push({r, c.pos});
    }
  }
}

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.size() == 1) {
    const int32_t id = byte_id_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  if (!whole_piece_id_.empty()) {  // ignore_merges: a piece that is a token is that token
    auto it = whole_piece_id_.find(std::string(piece));
    if (it != whole_piece_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // A byte without a token (SmolLM2 has none for 21 bytes, e.g. 0x04 and 0xFF) is dropped
  // before merging, as HF's BPE drops a character that is not in the vocabulary when there is no
  // unk token: ".\x04." encodes as "..".
  const size_t old = out.size();
  for (unsigned char b : piece) {
    if (byte_id_[b] >= 0) out.push_back(byte_id_[b]);
  }
  apply_merges(std::span<int32_t>(out).subspan(old));
  out.erase(std::remove(out.begin() + old, out.end(), kMerged), out.end());
}

void BpeTokenizer::encode_text(std::string_view text, std::vector<int32_t>& out) const {
  // Natural text repeats its words, so each distinct piece is merged once per call and later
  // copies come from where its ids already sit in `out`: piece -> (offset, count).
  std::unordered_map<std::string_view, std::pair<size_t, size_t>> seen;
  pre_.split(text, [&](std::string_view piece) {
    if (piece.size() == 1) {
      encode_piece(piece, out);
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

void BpeTokenizer::encode_append(std::string_view text, std::vector<int32_t>& out,
                                 bool parse_special) const {
  const auto run = [&](std::string_view t) {
    if (spm_) {
      encode_text_spm(t, out);
    } else if (wpm_) {
      encode_text_wpm(t, out);
    } else {
      encode_text(t, out);
    }
  };
  if (!specials_.can_match(parse_special)) {
    if (!text.empty()) run(text);
    return;
  }
  specials_.split(text, parse_special, run, [&](int32_t id) { out.push_back(id); });
}

std::vector<int32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  encode_append(text, out, false);
  return out;
}

std::vector<int32_t> BpeTokenizer::encode_special(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 16);
  encode_append(text, out, true);
  return out;
}

const std::string& BpeTokenizer::token_bytes(int32_t id) const {
  CHECK_MSG(id >= 0 && id < vocab_size(), "token id outside the vocabulary");
  return token_bytes_[id];
}

Expected<std::string> BpeTokenizer::decode_checked(std::span<const int32_t> ids,
                                                   bool render_special) const {
  if (wpm_) {
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= vocab_size()) {
        return Status::Error("bpe: token id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                             " is outside the vocabulary [0, " + std::to_string(vocab_size()) + ")");
      }
    }
    return decode_wpm(ids, render_special);
  }
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      return Status::Error("bpe: token id " + std::to_string(id) + " at position " +
                           std::to_string(i) + " is outside the vocabulary [0, " +
                           std::to_string(vocab_size()) + ")");
    }
    if (render_special &&
        (types_[id] == TokenType::kControl || types_[id] == TokenType::kUnknown)) {
      auto it = std::lower_bound(special_text_.begin(), special_text_.end(), id,
                                 [](const auto& e, int32_t v) { return e.first < v; });
      CHECK(it != special_text_.end() && it->first == id);
      out += it->second;
    } else {
      out += token_bytes_[id];
    }
  }
  // HF's decoder for SentencePiece vocabularies (Strip(" ", 1, 0)) removes the space that
  // add_space_prefix put in front of the text.
  if (spm_ && add_space_prefix_ && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

std::string BpeTokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  for (int32_t id : ids) CHECK_MSG(id >= 0 && id < vocab_size(), "token id outside the vocabulary");
  return decode_checked(ids, render_special).value();
}

std::vector<std::string> BpeTokenizer::gguf_tokens() const {
  std::vector<std::string> tokens(token_bytes_.size());
  if (spm_ || wpm_) return spm_text_;
  for (size_t i = 0; i < token_bytes_.size(); ++i) {
    if (types_[i] != TokenType::kControl && types_[i] != TokenType::kUserDefined) {
      tokens[i] = gpt2_bytes_to_text(token_bytes_[i]);
    }
  }
  for (const auto& [id, text] : special_text_) tokens[id] = text;
  return tokens;
}

std::vector<std::string> BpeTokenizer::gguf_merges() const {
  std::vector<std::string> out;
  if (spm_ || wpm_) return out;  // SentencePiece vocabularies store scores, WordPiece neither
  out.reserve(merges_.size());
  for (const Merge& m : merges_) {
    out.push_back(gpt2_bytes_to_text(token_bytes_[m.left]) + " " +
                  gpt2_bytes_to_text(token_bytes_[m.right]));
  }
  return out;
}

std::vector<int32_t> BpeTokenizer::gguf_token_types() const {
  std::vector<int32_t> types(types_.size());
  for (size_t i = 0; i < types_.size(); ++i) types[i] = static_cast<int32_t>(types_[i]);
  return types;
}

GgufVocab BpeTokenizer::gguf_vocab() const {
  GgufVocab v;
  v.model = spm_ ? "llama" : wpm_ ? "bert" : "gpt2";
  v.pre = spm_ || wpm_ ? "" : pre_.name();
  v.tokens = gguf_tokens();
  v.merges = gguf_merges();
  v.scores = scores_;
  v.token_types = gguf_token_types();
  v.bos = bos_, v.eos = eos_, v.pad = pad_, v.unk = unk_;
  v.add_bos = add_bos_;
  v.add_eos = add_eos_;
  v.lowercase = lowercase_;
  v.strip_accents = strip_accents_;
  v.max_input_chars_per_word = max_word_chars_;
  v.add_space_prefix = add_space_prefix_;
  v.chat_template = chat_template_;
  return v;
}

}  // namespace longctx::tokenizer
