// The KV cache: one pool of fixed-size blocks (kv_pool.h) shared by every sequence that uses it,
// and per sequence and per cache slot a page table mapping pages of `page_rows` consecutive
// positions to blocks. A slot is what one attention of the model keeps (an attention block one,
// a routed attention block two: its window ring and its compact slot); a block holds one slot's
// K rows then V rows of one page, in the cache's element types (fp32, fp16 or Q8_0),
// kv_heads * head_dim elements per row: grouped- and multi-query slots store
// their kv_heads only, never expanded to the query heads. Rows are laid out as attention/paged.h
// says and written by write_rows (kv_store.h).
//
// Slots whose pattern lets old keys go (a sliding window) keep what their queries can still see:
// before a pass the pages no query from then on can see (attention::oldest_key) go back to the
// pool and the next pages taken reuse them, so such a slot cycles through at most
// ceil((window - 1 + ubatch) / page_rows) + 1 blocks whatever the context (a ring of pages).
//
// Sequences share blocks by reference count: fork() gives a new sequence whose first n rows are
// the parent's (a prompt prefix computed once); a shared page is copied before either sequence
// writes into it (copy on write).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "attention/pattern.h"
#include "core/status.h"
#include "kvcache/kv_pool.h"
#include "kvcache/kv_store.h"

namespace longctx::kvcache {

inline constexpr int64_t kDefaultPageRows = 256;  // = the tiled attention's key tile

// Parses a cache element type name: f32, f16 or q8_0 -> ggml type id.
Expected<uint32_t> parse_cache_type(const std::string& s);

// What one attention block keeps per position: kv_heads rows of head_dim elements for K and for
// V, and the pattern that says which of them later queries still see.
struct KvSlot {
  int kv_heads = 0, head_dim = 0;
  attention::Pattern pattern;
  // A compact slot (CoLT5's routed key/values, layers/routed_attention.h) holds only the rows its
  // block chose to keep, packed: row r of the slot is the r-th kept row of the sequence, at the
  // position KvStore::positions[r]. Its pages cover kept rows, not positions, so its size follows
  // the rows kept. The pattern is Causal over those positions.
  bool compact = false;
};

// How a model's cache is laid out.
struct KvGeometry {
  struct Slot {
    int64_t kv_heads = 0, head_dim = 0;
    int64_t k_row_bytes = 0, v_row_bytes = 0;  // all heads of one position
    attention::Pattern pattern;
    bool compact = false;  // KvSlot::compact
  };
  bool has_compact() const;
  std::vector<Slot> slots;
  uint32_t k_type = 0, v_type = 0;
  int64_t page_rows = kDefaultPageRows;  // a power of two
  int64_t block_bytes() const;           // page_rows * the largest K + V row of a slot
  // Pages slot s ever holds for a context of ctx tokens run in passes of at most ubatch tokens,
  // and the sum over slots (the blocks one sequence needs).
  int64_t max_pages(int s, int64_t ctx, int64_t ubatch) const;
  int64_t max_blocks(int64_t ctx, int64_t ubatch) const;
};
// Error when a type is not a cache type, or Q8_0 meets a head_dim that is not a multiple of 32.
Expected<KvGeometry> make_geometry(const std::vector<KvSlot>& slots, uint32_t k_type, uint32_t v_type,
                                   int64_t page_rows = kDefaultPageRows);

class KvCache {
 public:
  KvCache() = default;
  // A sequence of up to `capacity` positions over `pool`.
  KvCache(std::shared_ptr<KvPool> pool, std::shared_ptr<const KvGeometry> geometry, int64_t capacity);
  KvCache(KvCache&& o) noexcept { *this = std::move(o); }
  KvCache& operator=(KvCache&& o) noexcept;
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;
  ~KvCache() { clear(); }

  bool empty() const { return pool_ == nullptr; }
  int64_t capacity() const { return capacity_; }
  const KvGeometry& geometry() const { return *geo_; }
  KvPool& pool() const { return *pool_; }
  int n_slots() const { return static_cast<int>(table_.size()); }

  // Before a pass writes rows [pos0, pos0 + n) (and reads rows before pos0): slots give back the
  // pages no query at pos0 or later sees, then every slot gets private blocks for the pages the
  // new rows fall in. Error when the pool runs out of blocks. A compact slot first forgets its
  // rows at positions >= pos0, then gets blocks for up to n more rows.
  Status prepare(int64_t pos0, int64_t n);
  KvStore store(int s) const;
  // The first row slot s still holds (rows before it were given back or shifted out).
  int64_t first_row(int s) const { return first_row_[s]; }
  int64_t pages_held(int s) const;
  int64_t blocks_held() const;
  // The longest prefix of n held positions a pass starting there can build on: n, or 0 when a
  // slot already gave back rows a query at n would need.
  int64_t reusable(int64_t n) const;
  // A new sequence on the same pool whose first n positions are these (blocks shared).
  KvCache fork(int64_t n) const;
  // The pool block holding page `page` of slot s (-1: not held).
  int32_t block(int s, int64_t page) const { return table_[s][page]; }
  // Makes block `id` of the pool (holding rows of this geometry) page `page` of slot s, taking a
  // reference; the page must not be held. Rows before the first page adopted in a slot count as
  // given back (first_row).
  void adopt(int s, int64_t page, int32_t id);
  const std::shared_ptr<KvPool>& shared_pool() const { return pool_; }
  // K or V row of slot s at position pos (its page must be held), all heads in order, in the
  // cache's encoding (k_row_bytes / v_row_bytes).
  void read_row(int s, int64_t pos, bool value, uint8_t* dst) const;
  void write_row(int s, int64_t pos, bool value, const uint8_t* src);
  // Compact slot s: the positions of its rows (ascending).
  const std::vector<int64_t>& positions(int s) const { return positions_[s]; }
  // Context shift: of the n positions held, keeps [0, keep) and [keep + discard, n), which move
  // to [keep, n - discard). `rotate_keys(s, rows, count)` re-rotates count fp32 key rows of
  // slot s (kv_heads * head_dim each) from position p to p - discard (RoPE; null: none).
  // Rows a window slot had given back stay out of reach (first_row). Error with a compact slot.
  Status shift(int64_t keep, int64_t discard, int64_t n,
               const std::function<void(int, float*, int64_t)>& rotate_keys);
  void clear();  // gives every block back

 private:
  void drop(int s, int64_t page);
  Status own(int s, int64_t page);  // a private block for page (taken, or copied when shared)
  // Head h of the K or V row at pos of slot s.
  uint8_t* head_row(int s, int64_t pos, bool value, int64_t h) const;

  std::shared_ptr<KvPool> pool_;
  std::shared_ptr<const KvGeometry> geo_;
  int64_t capacity_ = 0;
  int shift_ = 0;  // log2(page_rows)
  std::vector<std::vector<int32_t>> table_;               // [slot][page] -> block, -1 when not held
  std::vector<std::vector<uint8_t*>> k_pages_, v_pages_;  // [slot][page] -> first K / V row
  std::vector<int64_t> first_row_;
  // Per slot, a compact slot's row positions (KvStore::positions points here); empty otherwise.
  std::vector<std::vector<int64_t>> positions_;
};

}  // namespace longctx::kvcache
