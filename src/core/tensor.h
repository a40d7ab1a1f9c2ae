// TensorView: a non-owning, strided fp32 view of up to 4 dimensions (row-major, last dim fastest).
// Buffer: an owning, 64-byte aligned, zero-filled fp32 allocation.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <utility>

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

// Buffer: zero-filled on creation. Allocations of 1 MiB and more come straight from the kernel
// (anonymous mmap), whose pages are zero and become resident only when first written: a model
// whose matrices are read from the file mapping never pays for their fp32 slots.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n) { resize(n); }
  Buffer(Buffer&& o) noexcept { swap(o); }
  Buffer& operator=(Buffer&& o) noexcept {
    Buffer tmp(std::move(o));
    swap(tmp);
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { release(); }

  void resize(int64_t n);
  float* data() const { return p_; }
  int64_t size() const { return size_; }
  void zero() { if (size_) std::memset(p_, 0, size_ * sizeof(float)); }

 private:
  void release();
  void swap(Buffer& o) noexcept {
    std::swap(p_, o.p_);
    std::swap(size_, o.size_);
    std::swap(bytes_, o.bytes_);
    std::swap(mapped_, o.mapped_);
  }
  float* p_ = nullptr;
  int64_t size_ = 0;
  size_t bytes_ = 0;
  bool mapped_ = false;
};

}  // namespace longctx
