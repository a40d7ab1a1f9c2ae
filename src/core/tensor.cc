#include "core/tensor.h"

#include <sys/mman.h>

namespace longctx {

namespace {
constexpr size_t kMapThreshold = size_t{1} << 20;
}

void Buffer::resize(int64_t n) {
  CHECK(n >= 0);
  release();
  size_ = n;
  bytes_ = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
  if (bytes_ == 0) bytes_ = 64;
  if (bytes_ >= kMapThreshold) {
    void* p = mmap(nullptr, bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK_MSG(p != MAP_FAILED, "out of memory");
    p_ = static_cast<float*>(p);  // page aligned, zero until written
    mapped_ = true;
  } else {
    p_ = static_cast<float*>(std::aligned_alloc(64, bytes_));
    CHECK_MSG(p_ != nullptr, "out of memory");
    std::memset(p_, 0, bytes_);
    mapped_ = false;
  }
}

void Buffer::release() {
  if (!p_) return;
  if (mapped_)
    munmap(p_, bytes_);
  else
    std::free(p_);
  p_ = nullptr;
  size_ = 0;
  bytes_ = 0;
  mapped_ = false;
}

}  // namespace longctx
