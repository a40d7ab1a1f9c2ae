#include "kernels/cross_entropy.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/vec.h"

namespace longctx::kernels {

double cross_entropy(ThreadPool& pool, float* logits, const int32_t* targets, int64_t rows,
                     int64_t vocab, float* dlogits, float grad_scale) {
  std::vector<double> losses(rows, 0.0);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    std::vector<float> tmp(dlogits ? 0 : vocab);
    for (int64_t r = r0; r < r1; ++r) {
      float* lr = logits + r * vocab;
      const int32_t t = targets[r];
      if (t < 0) {
        if (dlogits) std::memset(dlogits + r * vocab, 0, vocab * sizeof(float));
        continue;
      }
      const float m = vec_max(lr, vocab);
      const float target_logit = lr[t];
      float* e = dlogits ? dlogits + r * vocab : tmp.data();
      if (e != lr) std::memcpy(e, lr, vocab * sizeof(float));
      const float s = vec_exp_sum(e, m, vocab);
      losses[r] = std::log(static_cast<double>(s)) + m - target_logit;
      if (dlogits) {
        vec_scale(e, grad_scale / s, vocab);
        e[t] -= grad_scale;
      }
    }
  });
  double total = 0;
  for (double l : losses) total += l;
  return total;
}

}  // namespace longctx::kernels
