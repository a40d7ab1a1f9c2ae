#include "kernels/norm.h"

#include <cmath>
#include <vector>

#include "kernels/vec.h"

namespace longctx::kernels {
namespace {

// dw / db come from per-thread partial sums added in thread order, so the result depends only
// on the thread count, never on timing.
void reduce_into(const std::vector<float>& parts, int threads, int64_t dim, int array, float* out) {
  for (int t = 0; t < threads; ++t) vec_add(out, parts.data() + (size_t(array) * threads + t) * dim, out, dim);
}

}  // namespace

void layernorm_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t dim, const float* w,
                       const float* b, float eps, float* y, float* mean, float* rstd) {
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      const float mu = vec_sum(xr, dim) / dim;
      // Sixteen independent partial sums (one SIMD register; a single running sum is a chain of
      // dependent adds, ~4 cycles per element), then added in order.
      float part[16] = {};
      int64_t i = 0;
      for (; i + 16 <= dim; i += 16)
        for (int j = 0; j < 16; ++j) part[j] += (xr[i + j] - mu) * (xr[i + j] - mu);
      float var = 0;
      for (int j = 0; j < 16; ++j) var += part[j];
      for (; i < dim; ++i) var += (xr[i] - mu) * (xr[i] - mu);
      const float rs = 1.0f / std::sqrt(var / dim + eps);
      if (b) {
        for (int64_t k = 0; k < dim; ++k) yr[k] = (xr[k] - mu) * rs * w[k] + b[k];
      } else {
        for (int64_t k = 0; k < dim; ++k) yr[k] = (xr[k] - mu) * rs * w[k];
      }
      if (mean) mean[r] = mu;
      if (rstd) rstd[r] = rs;
    }
  });
}

void layernorm_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t dim,
                        const float* w, const float* mean, const float* rstd, float* dx, float* dw,
                        float* db) {
  const int T = pool.threads();
  std::vector<float> parts(size_t(T) * dim * 2, 0.0f);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int t) {
    float* pdw = parts.data() + (size_t(0) * T + t) * dim;
    float* pdb = parts.data() + (size_t(1) * T + t) * dim;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      const float mu = mean[r], rs = rstd[r];
      float sum_g = 0, sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        float xh = (xr[i] - mu) * rs;
        float g = dyr[i] * w[i];
        sum_g += g;
        sum_gx += g * xh;
        pdw[i] += dyr[i] * xh;
        pdb[i] += dyr[i];
      }
      sum_g /= dim;
      sum_gx /= dim;
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) {
        float xh = (xr[i] - mu) * rs;
        dxr[i] += rs * (dyr[i] * w[i] - sum_g - xh * sum_gx);
      }
    }
  });
  if (dw) reduce_into(parts, T, dim, 0, dw);
  if (db) reduce_into(parts, T, dim, 1, db);
}

void rmsnorm_forward(ThreadPool& pool, const float* x, int64_t rows, int64_t dim, const float* w,
                     float eps, float* y, float* rstd) {
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      float rs = 1.0f / std::sqrt(vec_dot(xr, xr, dim) / dim + eps);
      for (int64_t i = 0; i < dim; ++i) yr[i] = xr[i] * rs * w[i];
      if (rstd) rstd[r] = rs;
    }
  });
}

void rmsnorm_backward(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t dim,
                      const float* w, const float* rstd, float* dx, float* dw) {
  const int T = pool.threads();
  std::vector<float> parts(size_t(T) * dim, 0.0f);
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int t) {
    float* pdw = parts.data() + size_t(t) * dim;
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * dim;
      const float* dyr = dy + r * dim;
      const float rs = rstd[r];
      float sum_gx = 0;
      for (int64_t i = 0; i < dim; ++i) {
        float xh = xr[i] * rs;
        sum_gx += dyr[i] * w[i] * xh;
        pdw[i] += dyr[i] * xh;
      }
      sum_gx /= dim;
      float* dxr = dx + r * dim;
      for (int64_t i = 0; i < dim; ++i) dxr[i] += rs * (dyr[i] * w[i] - xr[i] * rs * sum_gx);
    }
  });
  if (dw) reduce_into(parts, T, dim, 0, dw);
}

}  // namespace longctx::kernels
