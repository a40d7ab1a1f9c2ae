// The KV cache: one pool of fixed-size blocks shared by every sequence that uses it, and per
// sequence and per layer a page table mapping pages of `page_rows` consecutive positions to
// blocks. A block holds one layer's K rows then V rows of one page, in the cache's element types
// (fp32, fp16 or Q8_0: --cache-type-k / --cache-type-v), kv_heads * head_dim elements per row:
// grouped- and multi-query layers store their kv_heads only, never expanded to the query heads.
//
// Sliding-window layers keep their window only: before a pass the pages no query from then on
// can see (MaskView::oldest_key) go back to the pool and the next pages taken reuse them, so such
// a layer cycles through at most ceil((window - 1 + ubatch) / page_rows) + 1 blocks whatever the
// context (a ring of pages).
//
// Sequences share blocks by reference count: fork() gives a new sequence whose first n rows are
// the parent's (a prompt prefix computed once); a shared page is copied before either sequence
// writes into it (copy on write).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "attention/pattern.h"
#include "core/status.h"
#include "layers/context.h"
#include "model/config.h"

namespace longctx::model {

inline constexpr int64_t kDefaultPageRows = 256;  // = the tiled attention's key tile

// How a model's cache is laid out.
struct KvGeometry {
  struct Layer {
    int64_t kv_heads = 0, head_dim = 0;
    int64_t k_row_bytes = 0, v_row_bytes = 0;  // all heads of one position
    attention::Pattern pattern;
  };
  std::vector<Layer> layers;
  uint32_t k_type = 0, v_type = 0;
  int64_t page_rows = kDefaultPageRows;  // a power of two
  int64_t block_bytes() const;           // page_rows * the largest K + V row of a layer
  // Pages layer l ever holds for a context of ctx tokens run in passes of at most ubatch tokens,
  // and the sum over layers (the blocks one sequence needs).
  int64_t max_pages(int l, int64_t ctx, int64_t ubatch) const;
  int64_t max_blocks(int64_t ctx, int64_t ubatch) const;
};
// Error when a type is not a cache type, or Q8_0 meets a head_dim that is not a multiple of 32.
Expected<KvGeometry> kv_geometry(const ModelConfig& c, uint32_t k_type, uint32_t v_type,
                                 int64_t page_rows = kDefaultPageRows);

class KvPool {
 public:
  KvPool(int64_t block_bytes, int64_t blocks);
  int64_t block_bytes() const { return block_bytes_; }
  int64_t blocks() const { return static_cast<int64_t>(refs_.size()); }
  int64_t free_blocks() const { return static_cast<int64_t>(free_.size()); }
  uint8_t* block(int32_t id) const { return mem_.get() + id * block_bytes_; }
  int32_t take();  // a free block holding one reference, or -1
  void retain(int32_t id) { ++refs_[id]; }
  void release(int32_t id);
  int32_t refs(int32_t id) const { return refs_[id]; }

 private:
  int64_t block_bytes_;
  std::unique_ptr<uint8_t[]> mem_;  // not touched until written: unused blocks stay non-resident
  std::vector<int32_t> refs_, free_;
};

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
  int n_layers() const { return static_cast<int>(table_.size()); }

  // Before a pass writes rows [pos0, pos0 + n) (and reads rows before pos0): window layers give
  // back the pages no query at pos0 or later sees, then every layer gets private blocks for the
  // pages the new rows fall in. Error when the pool runs out of blocks.
  Status prepare(int64_t pos0, int64_t n);
  layers::KvStore store(int l) const;
  // The first row layer l still holds (rows before it were given back or shifted out).
  int64_t first_row(int l) const { return first_row_[l]; }
  int64_t pages_held(int l) const;
  int64_t blocks_held() const;
  // The longest prefix of n held positions a pass starting there can build on: n, or 0 when a
  // window layer already gave back rows a query at n would need.
  int64_t reusable(int64_t n) const;
  // A new sequence on the same pool whose first n positions are these (blocks shared).
  KvCache fork(int64_t n) const;
  // K or V row of layer l at position pos (its page must be held), all heads in order, in the
  // cache's encoding (k_row_bytes / v_row_bytes).
  void read_row(int l, int64_t pos, bool value, uint8_t* dst) const;
  void write_row(int l, int64_t pos, bool value, const uint8_t* src);
  // Context shift: of the n positions held, keeps [0, keep) and [keep + discard, n), which move
  // to [keep, n - discard). `rotate_keys(l, rows, count)` re-rotates count fp32 key rows of
  // layer l (kv_heads * head_dim each) from position p to p - discard (RoPE; null: none).
  // Rows a window layer had given back stay out of reach (first_row).
  Status shift(int64_t keep, int64_t discard, int64_t n,
               const std::function<void(int, float*, int64_t)>& rotate_keys);
  void clear();  // gives every block back

 private:
  void drop(int l, int64_t page);
  Status own(int l, int64_t page);  // a private block for page (taken, or copied when shared)

  std::shared_ptr<KvPool> pool_;
  std::shared_ptr<const KvGeometry> geo_;
  int64_t capacity_ = 0;
  int shift_ = 0;  // log2(page_rows)
  std::vector<std::vector<int32_t>> table_;          // [layer][page] -> block, -1 when not held
  std::vector<std::vector<uint8_t*>> k_pages_, v_pages_;  // [layer][page] -> first K / V row
  std::vector<int64_t> first_row_;
};

}  // namespace longctx::model
