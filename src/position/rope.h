// Rotary position embedding (Su et al. 2021) on adjacent pairs: (x[2i], x[2i+1]) of each head is
// rotated by pos * theta^(-2i/head_dim) -- the GPT-J / GGUF llama ("normal") convention.
// The backward of a rotation is the rotation by the negative angle.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"

namespace longctx::position {

class Rope {
 public:
  Rope() = default;
  Rope(int head_dim, float theta, int64_t max_pos);
  // x: [batch, seq_len, heads * head_dim] rows with row_stride; row t of each sequence sits at
  // position pos0 + t. inverse = rotate by -angle (the backward pass).
  void apply(ThreadPool& pool, float* x, int64_t batch, int64_t seq_len, int heads, int64_t row_stride,
             int64_t pos0, bool inverse) const;
  int head_dim() const { return head_dim_; }
  int64_t max_pos() const { return max_pos_; }

 private:
  int head_dim_ = 0;
  int64_t max_pos_ = 0;
  std::vector<float> cos_, sin_;  // [max_pos, head_dim / 2]
};

}  // namespace longctx::position
