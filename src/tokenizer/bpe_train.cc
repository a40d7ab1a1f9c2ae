// BpeTokenizer::train: learns merges from a text.
//
// The text is cut into pre-tokenizer pieces and only the distinct pieces are kept, each with its
// frequency (a 4.3 MB English corpus has ~30k of them), so a merge touches a handful of short
// words instead of the text. Pair counts are kept up to date incrementally:
//   counts: pair -> occurrences, weighted by word frequency (exact at all times);
//   where:  pair -> ascending list of words that contained it when it appeared (may hold words
//           that lost it since; merging such a word finds nothing and is harmless);
//   heap:   (count, pair) entries that are upper bounds of the true counts. An existing pair's
//           count only falls (a merge removes adjacencies and creates new ones only next to the
//           new token), so a popped entry whose count is stale is pushed back with the true
//           count, and the first entry that matches is the true maximum. New pairs (all contain
//           the new token) are pushed once, after the merge that created them.
// Ties go to the highest count, then the smallest (left id, right id).
#include <algorithm>
#include <queue>

#include "core/check.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer {
namespace {

inline uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}
inline int32_t pair_left(uint64_t key) { return static_cast<int32_t>(key >> 32); }
inline int32_t pair_right(uint64_t key) { return static_cast<int32_t>(key & 0xFFFFFFFFu); }

struct Word {
  std::vector<int32_t> symbols;
  int64_t freq = 0;
};

struct HeapEntry {
  int64_t count;
  uint64_t pair;
  // std::priority_queue pops the largest: highest count, then smallest pair.
  bool operator<(const HeapEntry& o) const {
    return count != o.count ? count < o.count : pair > o.pair;
  }
};

class Trainer {
 public:
  explicit Trainer(std::vector<Word> words) : words_(std::move(words)) {
    for (int32_t w = 0; w < static_cast<int32_t>(words_.size()); ++w) {
      const Word& word = words_[w];
      for (size_t i = 0; i + 1 < word.symbols.size(); ++i) {
        const uint64_t p = pair_key(word.symbols[i], word.symbols[i + 1]);
        counts_[p] += word.freq;
        note_word(p, w);
      }
    }
    std::vector<HeapEntry> entries;
    entries.reserve(counts_.size());
    for (const auto& [p, c] : counts_) entries.push_back({c, p});
    heap_ = std::priority_queue<HeapEntry>(std::less<HeapEntry>(), std::move(entries));
  }

  // The most frequent pair, or false when none is left.
  bool pop_best(uint64_t* pair) {
    while (!heap_.empty()) {
      const HeapEntry top = heap_.top();
      heap_.pop();
      auto it = counts_.find(top.pair);
      const int64_t actual = it == counts_.end() ? 0 : it->second;
      if (actual == top.count) {
        *pair = top.pair;
        return true;
      }
      if (actual > 0) heap_.push({actual, top.pair});
    }
    return false;
  }

  // Replaces every occurrence of `pair` by `result` and updates counts, where-lists and heap.
  void apply(uint64_t pair, int32_t result) {
    merged_ = pair;
    counts_.erase(pair);
    auto wit = where_.find(pair);
    CHECK(wit != where_.end());
    const std::vector<int32_t> words = std::move(wit->second);
    where_.erase(wit);
    new_pairs_.clear();
    for (int32_t w : words) merge_word(w, pair_left(pair), pair_right(pair), result);
    std::sort(new_pairs_.begin(), new_pairs_.end());
    new_pairs_.erase(std::unique(new_pairs_.begin(), new_pairs_.end()), new_pairs_.end());
    for (uint64_t p : new_pairs_) {
      auto it = counts_.find(p);
      if (it != counts_.end()) heap_.push({it->second, p});
    }
  }

 private:
  void note_word(uint64_t p, int32_t w) {
    std::vector<int32_t>& list = where_[p];
    if (list.empty() || list.back() != w) list.push_back(w);
  }

  void add(uint64_t p, int64_t delta) {
    if (p == merged_) return;  // its count was dropped as a whole
    auto it = counts_.find(p);
    CHECK(it != counts_.end() || delta > 0);
    if (it == counts_.end()) {
      counts_.emplace(p, delta);
      return;
    }
    it->second += delta;
    CHECK(it->second >= 0);
    if (it->second == 0) counts_.erase(it);
  }

  // Left-to-right, non-overlapping, in place. Each occurrence updates the pairs around it against
  // the word as already rewritten on its left (so "a b a b" -> "X X" removes (X, a), which the
  // first occurrence added, and adds (X, X)); removals come before additions, so no count goes
  // below its true value.
  void merge_word(int32_t w, int32_t a, int32_t b, int32_t x) {
    std::vector<int32_t>& s = words_[w].symbols;
    const int64_t f = words_[w].freq;
    const size_t n = s.size();
    size_t out = 0;
    for (size_t i = 0; i < n;) {
      if (i + 1 < n && s[i] == a && s[i + 1] == b) {
        if (out > 0) add(pair_key(s[out - 1], a), -f);
        if (i + 2 < n) add(pair_key(b, s[i + 2]), -f);
        if (out > 0) add_new(pair_key(s[out - 1], x), f, w);
        if (i + 2 < n) add_new(pair_key(x, s[i + 2]), f, w);
        s[out++] = x;
        i += 2;
      } else {
        s[out++] = s[i++];
      }
    }
    s.resize(out);
  }

  void add_new(uint64_t p, int64_t delta, int32_t w) {
    add(p, delta);
    note_word(p, w);
    new_pairs_.push_back(p);
  }

  std::vector<Word> words_;
  std::unordered_map<uint64_t, int64_t> counts_;
  std::unordered_map<uint64_t, std::vector<int32_t>> where_;
  std::priority_queue<HeapEntry> heap_;
  std::vector<uint64_t> new_pairs_;
  uint64_t merged_ = ~uint64_t{0};
};

}  // namespace

Expected<BpeTokenizer> BpeTokenizer::train(std::string_view text, const TrainOptions& opt) {
  constexpr int kMinVocab = 256 + kNumSpecials + 1;
  if (opt.vocab_size < kMinVocab || opt.vocab_size > kMaxVocabSize) {
    return Status::Error("bpe: vocab_size " + std::to_string(opt.vocab_size) + " is outside [" +
                         std::to_string(kMinVocab) + ", " + std::to_string(kMaxVocabSize) +
                         "] (256 byte tokens + 3 specials + at least one merge)");
  }
  if (text.empty()) return Status::Error("bpe: cannot train on an empty text");

  // Distinct pieces with their frequencies. Single-byte pieces hold no pair and are dropped.
  std::unordered_map<std::string_view, int64_t> piece_freq;
  for_each_piece(text, [&](std::string_view piece) {
    if (piece.size() >= 2) ++piece_freq[piece];
  });
  std::vector<Word> words;
  words.reserve(piece_freq.size());
  for (const auto& [piece, freq] : piece_freq) {
    Word w;
    w.freq = freq;
    w.symbols.reserve(piece.size());
    for (unsigned char c : piece) w.symbols.push_back(c);
    words.push_back(std::move(w));
  }
  piece_freq.clear();

  BpeTokenizer t;
  t.token_bytes_.reserve(std::min(opt.vocab_size, 1 << 16));  // training may stop early
  for (int b = 0; b < 256; ++b) {
    t.token_bytes_.emplace_back(1, static_cast<char>(b));
    t.byte_id_[b] = b;
  }

  const int planned = opt.vocab_size - 256 - kNumSpecials;
  Trainer trainer(std::move(words));
  uint64_t pair = 0;
  while (static_cast<int>(t.merges_.size()) < planned && trainer.pop_best(&pair)) {
    const Merge m{pair_left(pair), pair_right(pair), static_cast<int32_t>(t.token_bytes_.size())};
    trainer.apply(pair, m.result);
    t.merges_.push_back(m);
    t.token_bytes_.push_back(t.token_bytes_[m.left] + t.token_bytes_[m.right]);
    const int done = static_cast<int>(t.merges_.size());
    if (opt.progress && done % 100 == 0) opt.progress(done, planned);
  }
  if (opt.progress) opt.progress(static_cast<int>(t.merges_.size()), planned);
  t.index_merges();

  const char* names[kNumSpecials] = {kBosText, kEosText, kPadText};
  int32_t* ids[kNumSpecials] = {&t.bos_, &t.eos_, &t.pad_};
  for (int k = 0; k < kNumSpecials; ++k) {
    *ids[k] = static_cast<int32_t>(t.token_bytes_.size());
    t.token_bytes_.emplace_back();
    t.special_text_.emplace_back(*ids[k], names[k]);
  }
  t.finish();
  return t;
}

}  // namespace longctx::tokenizer
