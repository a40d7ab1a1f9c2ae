// Activation arena: one aligned block, bump-allocated per step and reset between steps,
// so the training loop does not touch malloc in its hot path.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/tensor.h"

namespace longctx {

class Arena {
 public:
  explicit Arena(int64_t floats = 0) { if (floats) buf_.resize(floats); }
  void reserve(int64_t floats) { if (floats > buf_.size()) { buf_.resize(floats); } used_ = 0; }
  // Returns n floats aligned to 16 floats (64 bytes); contents are not cleared.
  float* alloc(int64_t n) {
    int64_t at = (used_ + 15) & ~int64_t(15);
    CHECK_MSG(at + n <= buf_.size(), "activation arena exhausted");
    used_ = at + n;
    if (used_ > peak_) peak_ = used_;
    return buf_.data() + at;
  }
  float* alloc_zero(int64_t n) {
    float* p = alloc(n);
    std::memset(p, 0, n * sizeof(float));
    return p;
  }
  void reset() { used_ = 0; }
  // Scoped reuse: everything allocated after mark() is released by rewind(mark).
  int64_t mark() const { return used_; }
  void rewind(int64_t mark) { used_ = mark; }
  int64_t used() const { return used_; }
  int64_t peak() const { return peak_; }
  int64_t capacity() const { return buf_.size(); }

 private:
  Buffer buf_;
  int64_t used_ = 0, peak_ = 0;
};

}  // namespace longctx
