// TensorView: a non-owning, strided fp32 view of up to 4 dimensions (row-major, last dim fastest).
// Buffer: an owning, 64-byte aligned fp32 allocation.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>

#include "core/check.h"

namespace longctx {

struct TensorView {
  float* data = nullptr;
  int ndim = 0;
  int64_t shape[4] = {1, 1, 1, 1};
  int64_t stride[4] = {0, 0, 0, 0};  // in elements

  TensorView() = default;
  // Contiguous view with the given shape.
  TensorView(float* d, std::initializer_list<int64_t> dims) : data(d) {
    CHECK(dims.size() >= 1 && dims.size() <= 4);
    ndim = static_cast<int>(dims.size());
    int i = 0;
    for (int64_t v : dims) shape[i++] = v;
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; --k) { stride[k] = s; s *= shape[k]; }
  }
  int64_t numel() const {
    int64_t n = 1;
    for (int k = 0; k < ndim; ++k) n *= shape[k];
    return n;
  }
  bool contiguous() const {
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; --k) { if (stride[k] != s) return false; s *= shape[k]; }
    return true;
  }
  // 2-D helpers: rows = product of leading dims, cols = last dim.
  int64_t cols() const { return shape[ndim - 1]; }
  int64_t rows() const { return numel() / cols(); }
  float* row(int64_t r) const { return data + r * stride[ndim - 2 >= 0 ? ndim - 2 : 0]; }
};

struct AlignedFree { void operator()(float* p) const { std::free(p); } };

class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n) { resize(n); }
  void resize(int64_t n) {
    size_ = n;
    size_t bytes = ((static_cast<size_t>(n) * sizeof(float) + 63) / 64) * 64;
    if (bytes == 0) bytes = 64;
    p_.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    CHECK_MSG(p_ != nullptr, "out of memory");
    std::memset(p_.get(), 0, bytes);
  }
  float* data() const { return p_.get(); }
  int64_t size() const { return size_; }
  void zero() { if (size_) std::memset(p_.get(), 0, size_ * sizeof(float)); }

 private:
  std::unique_ptr<float, AlignedFree> p_;
  int64_t size_ = 0;
};

}  // namespace longctx
