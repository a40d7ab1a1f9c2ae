// AdamW over the model's tensor list: global gradient-norm clipping, then decoupled weight decay
// (Loshchilov & Hutter) on the tensors marked `decay` (matrices and embeddings, not norms or
// biases). Frozen tensors (not trainable) are left as they are, out of the norm, and have no
// moments: the two moment buffers hold the trainable tensors only, in list order.
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
  // Statistic tensors (layers::TensorDecl::statistic): p -= statistic_scale * gradient, with
  // 1 / (the micro-batches and ranks whose gradients were summed) so the step is their mean.
  float statistic_scale = 1.0f;
};

class AdamW {
 public:
  // Moments for the tensors of `layout` that are trainable now.
  explicit AdamW(const model::ParamLayout& layout);
  // One update with learning rate lr as step t (1-based, for bias correction). Returns the
  // global gradient norm before clipping, summed per tensor in list order (deterministic).
  double step(ThreadPool& pool, model::Model& model, float lr, int64_t t, const AdamWOptions& opt);
  Buffer& m() { return m_; }
  Buffer& v() { return v_; }
  int64_t floats() const { return floats_; }  // of each moment buffer

 private:
  std::vector<int64_t> offset_;  // per tensor: its moments' offset, -1 when frozen
  int64_t floats_ = 0;
  Buffer m_, v_;
};

}  // namespace longctx::train
