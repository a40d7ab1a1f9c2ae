// AdamW over the model's tensor list: global gradient-norm clipping, then decoupled weight decay
// (Loshchilov & Hutter) on the tensors marked `decay` (matrices and embeddings, not norms or
// biases). Tensors declared not trainable are left as they are (and out of the norm). Moments
// live in two flat buffers with the parameters' layout.
#pragma once
#include <cstdint>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "model/model.h"

namespace longctx::train {

struct AdamWOptions {
  float beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f;
  float weight_decay = 0.1f;
  float clip = 1.0f;  // max global gradient norm; <= 0 disables clipping
};

class AdamW {
 public:
  explicit AdamW(int64_t total_floats) : m_(total_floats), v_(total_floats) {}
  // One update with learning rate lr as step t (1-based, for bias correction). Returns the
  // global gradient norm before clipping, summed per tensor in list order (deterministic).
  double step(ThreadPool& pool, model::Model& model, float lr, int64_t t, const AdamWOptions& opt);
  Buffer& m() { return m_; }
  Buffer& v() { return v_; }

 private:
  Buffer m_, v_;
};

}  // namespace longctx::train
