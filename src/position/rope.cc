#include "position/rope.h"

#include <cmath>

#include "core/check.h"

namespace longctx::position {

Rope::Rope(int head_dim, float theta, int64_t max_pos) : head_dim_(head_dim), max_pos_(max_pos) {
  CHECK(head_dim % 2 == 0);
  const int half = head_dim / 2;
  cos_.resize(max_pos * half);
  sin_.resize(max_pos * half);
  for (int64_t p = 0; p < max_pos; ++p) {
    for (int i = 0; i < half; ++i) {
      // Angles in double: at long positions float rounding of p * freq is visible.
      double freq = std::pow(static_cast<double>(theta), -2.0 * i / head_dim);
      double a = static_cast<double>(p) * freq;
      cos_[p * half + i] = static_cast<float>(std::cos(a));
      sin_[p * half + i] = static_cast<float>(std::sin(a));
    }
  }
}

void Rope::apply(ThreadPool& pool, float* x, int64_t batch, int64_t seq_len, int heads,
                 int64_t row_stride, int64_t pos0, bool inverse) const {
  CHECK_MSG(pos0 + seq_len <= max_pos_, "rope: position past the table");
  const int half = head_dim_ / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  pool.parallel_range(batch * seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p = pos0 + r % seq_len;
      const float* c = cos_.data() + p * half;
      const float* s = sin_.data() + p * half;
      float* row = x + r * row_stride;
      for (int h = 0; h < heads; ++h) {
        float* v = row + h * head_dim_;
        for (int i = 0; i < half; ++i) {
          float a = v[2 * i], b = v[2 * i + 1];
          float si = sign * s[i];
          v[2 * i] = a * c[i] - b * si;
          v[2 * i + 1] = a * si + b * c[i];
        }
      }
    }
  });
}

}  // namespace longctx::position
