// KvPool: one allocation of fixed-size blocks shared by every sequence of a cache, with a
// reference count per block (sequences that fork share blocks until one writes).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

namespace longctx::kvcache {

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

}  // namespace longctx::kvcache
