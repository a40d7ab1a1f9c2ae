// Attention patterns: which keys a query may see. Positions are absolute token positions.
//
//   Full           every key (bidirectional, for encoders)
//   Causal         keys k <= q
//   SlidingWindow  keys q - window < k <= q (causal; window >= seq_len is plain causal)
//   BigBird        tokens in blocks of `block`; query block i sees key blocks of
//                    - its window: `window` blocks centred on i (bidirectional) or the `window`
//                      blocks ending at i (causal),
//                    - the first `global` blocks, and every key if i itself is a global block,
//                    - `random` blocks per query block drawn without replacement from the blocks
//                      not already seen, from a seed and i alone (causal: only blocks before the
//                      window, so decoding over a cache sees the same blocks as a full pass);
//                  the causal form also masks keys after the query inside the blocks it visits.
//
// A pattern answers three questions (MaskView binds it to a key count): the dense mask
// visible(q, k), the key spans a block of queries visits (the drivers' work list, so work is
// proportional to visited blocks), and the oldest key a query still needs (cache eviction).
#pragma once
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

namespace longctx::attention {

struct Full {};
struct Causal {};
struct SlidingWindow {
  int64_t window = 0;
};
struct BigBird {
  int64_t block = 64;
  int window = 3;
  int global = 2;
  int random = 3;
  uint64_t seed = 0;
  bool causal = true;
};
using Pattern = std::variant<Full, Causal, SlidingWindow, BigBird>;

// Text form, as `--attn` takes it: full | causal | window:W | bigbird:B,W,G,R[,SEED] (causal)
// | bigbird-bi:B,W,G,R[,SEED] (bidirectional).
std::string format_pattern(const Pattern& p);
Expected<Pattern> parse_pattern(const std::string& s);
// Comma-separated list, one pattern per layer (repeated cyclically over the layers): a number
// after a bigbird item continues that item, so "window:256,bigbird:64,3,2,3,causal" is three.
Expected<std::vector<Pattern>> parse_pattern_list(const std::string& s);
Status validate_pattern(const Pattern& p);
bool is_causal(const Pattern& p);
// No query at position >= q sees a key before this one, under any key count (Full, Causal and
// BigBird with global or random blocks: 0). What a KV cache asks before giving pages back.
int64_t oldest_key(const Pattern& p, int64_t q);

// Keys [lo, hi); masked = false when every query of the block sees every key of the span.
struct KeySpan {
  int64_t lo = 0, hi = 0;
  bool masked = false;
};

// A pattern over kv_len keys for queries at positions [q_lo, q_hi) (default: all kv_len), with
// BigBird's random blocks drawn once, up front: a MaskView is immutable and shared by threads.
class MaskView {
 public:
  MaskView(const Pattern& p, int64_t kv_len, int64_t q_lo = 0, int64_t q_hi = -1);
  const Pattern& pattern() const { return pattern_; }
  int64_t kv_len() const { return kv_len_; }

  bool visible(int64_t q, int64_t k) const;
  // Sorted, disjoint spans of keys seen by at least one query in [q_lo, q_hi); adjacent spans
  // with the same flag are merged. Appends to *out.
  void key_spans(int64_t q_lo, int64_t q_hi, std::vector<KeySpan>* out) const;
  // The keys of [lo, hi) that query q sees, as disjoint spans (all unmasked). Appends to *out.
  void row_spans(int64_t q, int64_t lo, int64_t hi, std::vector<KeySpan>* out) const;
  // attention::oldest_key of the pattern.
  int64_t oldest_key(int64_t q) const;
  // BigBird: the random key blocks of query block qb, sorted (empty for other patterns).
  const std::vector<int64_t>& random_blocks(int64_t qb) const;
  // Preferred query-block size for the drivers (BigBird: its block, so tiles are exact).
  int64_t query_block_hint() const;

 private:
  bool bigbird_sees_block(const BigBird& bb, int64_t qb, int64_t kb) const;

  Pattern pattern_;
  int64_t kv_len_;
  int64_t n_kblocks_ = 0;
  int64_t qb0_ = 0;                              // first query block with random blocks
  std::vector<std::vector<int64_t>> random_;     // BigBird: [query block - qb0_] -> key blocks
};

}  // namespace longctx::attention
