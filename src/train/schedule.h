// Learning-rate schedule: linear warmup from 0 to lr over `warmup` steps, then cosine decay to
// min_lr at `steps` (Loshchilov & Hutter's SGDR shape without restarts).
#pragma once
#include <cmath>
#include <cstdint>

namespace longctx::train {

inline float lr_at(int64_t step, int64_t steps, int64_t warmup, float lr, float min_lr) {
  if (warmup > 0 && step < warmup) return lr * static_cast<float>(step + 1) / static_cast<float>(warmup);
  if (step >= steps) return min_lr;
  const double t = static_cast<double>(step - warmup) / static_cast<double>(std::max<int64_t>(1, steps - warmup));
  return min_lr + 0.5f * (lr - min_lr) * static_cast<float>(1.0 + std::cos(3.141592653589793 * t));
}

}  // namespace longctx::train
