#include "train/optimizer.h"

#include <cmath>

#include "kernels/vec.h"

namespace longctx::train {

AdamW::AdamW(const model::ParamLayout& layout) {
  for (const auto& t : layout.tensors()) {
    offset_.push_back(t.trainable ? floats_ : -1);
    if (t.trainable) floats_ += (t.numel + 15) & ~int64_t(15);
  }
  m_.resize(floats_);
  v_.resize(floats_);
}

double AdamW::step(ThreadPool& pool, model::Model& model, float lr, int64_t t, const AdamWOptions& opt) {
  float* G = model.grads();
  float* P = model.params();
  const auto& tensors = model.layout().tensors();
  double sq = 0;
  for (const auto& tt : tensors)
    if (tt.trainable && !tt.statistic) sq += kernels::vec_sum_sq(G + tt.offset, tt.numel);
  const double norm = std::sqrt(sq);
  const float clip_scale = (opt.clip > 0 && norm > opt.clip) ? static_cast<float>(opt.clip / norm) : 1.0f;
  const float bc1 = 1.0f - std::pow(opt.beta1, static_cast<float>(t));
  const float bc2 = 1.0f - std::pow(opt.beta2, static_cast<float>(t));
  pool.parallel_for(static_cast<int64_t>(tensors.size()), [&](int64_t i, int) {
    const auto& tt = tensors[i];
    if (!tt.trainable) return;  // frozen
    CHECK_MSG(offset_[i] >= 0, "a tensor became trainable after the optimizer was made");
    if (tt.statistic) {  // p -= g / (the gradient sums it holds): its own rule, no schedule
      for (int64_t j = 0; j < tt.numel; ++j) P[tt.offset + j] -= opt.statistic_scale * G[tt.offset + j];
      return;
    }
    if (clip_scale != 1.0f) kernels::vec_scale(G + tt.offset, clip_scale, tt.numel);
    kernels::vec_adamw(P + tt.offset, G + tt.offset, m_.data() + offset_[i], v_.data() + offset_[i], tt.numel, lr,
                       opt.beta1, opt.beta2, opt.eps, tt.decay ? opt.weight_decay : 0.0f, bc1, bc2);
  });
  return norm;
}

}  // namespace longctx::train
