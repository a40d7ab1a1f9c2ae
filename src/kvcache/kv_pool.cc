#include "kvcache/kv_pool.h"

#include <climits>

#include "core/check.h"

namespace longctx::kvcache {

KvPool::KvPool(int64_t block_bytes, int64_t blocks)
    : block_bytes_(block_bytes), mem_(new uint8_t[block_bytes * blocks]), refs_(blocks, 0) {
  CHECK(blocks < INT32_MAX);
  free_.reserve(blocks);
  for (int64_t b = blocks - 1; b >= 0; --b) free_.push_back(static_cast<int32_t>(b));
}

int32_t KvPool::take() {
  if (free_.empty()) return -1;
  const int32_t id = free_.back();
  free_.pop_back();
  refs_[id] = 1;
  return id;
}

void KvPool::release(int32_t id) {
  CHECK(refs_[id] > 0);
  if (--refs_[id] == 0) free_.push_back(id);
}

}  // namespace longctx::kvcache
