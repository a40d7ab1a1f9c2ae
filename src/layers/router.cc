#include "layers/router.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/check.h"
#include "kernels/vec.h"

namespace longctx::layers {

float initial_threshold(double fraction) {
  CHECK(fraction > 0 && fraction <= 1);
  if (fraction >= 1) return -INFINITY;
  // Inverse of the normal's upper tail by bisection on erfc (enough for a starting value).
  double lo = -10, hi = 10;
  for (int i = 0; i < 100; ++i) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(mid / std::sqrt(2.0)) > fraction ? lo : hi) = mid;
  }
  return static_cast<float>(0.5 * (lo + hi));
}

namespace {
double norm_of(const float* u, int64_t dim) {
  double s = 0;
  for (int64_t i = 0; i < dim; ++i) s += double(u[i]) * u[i];
  return std::sqrt(s);
}
}  // namespace

void route_all(int64_t rows, Routing* r) {
  r->rows.resize(static_cast<size_t>(rows));
  for (int64_t i = 0; i < rows; ++i) r->rows[i] = i;
  r->gate.assign(static_cast<size_t>(rows), 1.0f);
  r->z.assign(static_cast<size_t>(rows), 0.0f);
  r->considered = rows;
}

void route(ThreadPool& pool, const float* h, int64_t rows, int64_t dim, const float* u, float tau, double fraction,
           Routing* r) {
  const float inv = static_cast<float>(1.0 / std::max(norm_of(u, dim), 1e-30));
  std::vector<float> z(static_cast<size_t>(rows));
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t i = r0; i < r1; ++i) z[i] = kernels::vec_dot(h + i * dim, u, dim) * inv;
  });
  r->rows.clear();
  r->gate.clear();
  r->z.clear();
  r->considered = rows;
  r->quantile = NAN;
  if (rows >= 2 && fraction > 0) {
    const int64_t k = std::clamp<int64_t>(std::llround(fraction * double(rows)), 1, rows - 1);
    std::vector<float> s = z;  // the k-th and (k + 1)-th largest
    std::nth_element(s.begin(), s.begin() + k, s.end(), std::greater<float>());
    const float below = s[k];
    const float above = *std::min_element(s.begin(), s.begin() + k);
    r->quantile = 0.5f * (above + below);
  }
  for (int64_t i = 0; i < rows; ++i) {
    if (!(z[i] > tau)) continue;
    r->rows.push_back(i);
    r->z.push_back(z[i]);
    r->gate.push_back(1.0f / (1.0f + std::exp(tau - z[i])));
  }
}

void route_backward(const Routing& r, const float* h, int64_t dim, const float* u, float tau, const float* dgate,
                    float* dh, float* du, float* dtau) {
  const double n = norm_of(u, dim);
  const float inv = static_cast<float>(1.0 / std::max(n, 1e-30));
  std::vector<double> acc(du ? dim : 0, 0.0);
  for (size_t j = 0; j < r.rows.size(); ++j) {
    const float g = r.gate[j];
    const float dz = dgate[j] * g * (1.0f - g);
    const float* hi = h + r.rows[j] * dim;
    // z = h . u / |u|: dz/dh = u / |u|; dz/du = (h - z u / |u|) / |u|.
    for (int64_t k = 0; k < dim; ++k) dh[r.rows[j] * dim + k] += dz * u[k] * inv;
    if (du)
      for (int64_t k = 0; k < dim; ++k) acc[k] += double(dz) * (hi[k] - r.z[j] * u[k] * inv) * inv;
  }
  if (du)
    for (int64_t k = 0; k < dim; ++k) du[k] += static_cast<float>(acc[k]);
  if (dtau && std::isfinite(r.quantile)) *dtau += kThresholdRate * (tau - r.quantile);
}

}  // namespace longctx::layers
