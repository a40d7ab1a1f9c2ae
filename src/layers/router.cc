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

// z_i = h_i . u / |u| for rows [0, rows) of h [rows, dim].
std::vector<float> scores(ThreadPool& pool, const float* h, int64_t rows, int64_t dim, const float* u) {
  const float inv = static_cast<float>(1.0 / std::max(norm_of(u, dim), 1e-30));
  std::vector<float> z(static_cast<size_t>(rows));
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t i = r0; i < r1; ++i) z[i] = kernels::vec_dot(h + i * dim, u, dim) * inv;
  });
  return z;
}

// r emptied for a pass of `rows` rows.
void start(int64_t rows, Routing* r) {
  r->rows.clear();
  r->gate.clear();
  r->z.clear();
  r->considered = rows;
  r->quantile = NAN;
  r->pivots.clear();
  r->seq.clear();
}
}  // namespace

void route_all(int64_t rows, Routing* r) {
  start(rows, r);
  for (int64_t i = 0; i < rows; ++i) {
    r->rows.push_back(i);
    r->gate.push_back(1.0f);
    r->z.push_back(0.0f);
  }
}

void route(ThreadPool& pool, const float* h, int64_t rows, int64_t dim, const float* u, float tau, double fraction,
           Routing* r) {
  const std::vector<float> z = scores(pool, h, rows, dim, u);
  start(rows, r);
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

void route_topk(ThreadPool& pool, const float* h, int64_t batch, int64_t seq_len, int64_t dim, const float* u,
                double fraction, Routing* r) {
  const int64_t rows = batch * seq_len;
  const std::vector<float> z = scores(pool, h, rows, dim, u);
  start(rows, r);
  const int64_t k = std::clamp<int64_t>(std::llround(fraction * double(seq_len)), 1, seq_len);
  std::vector<int64_t> order(static_cast<size_t>(seq_len));
  for (int64_t b = 0; b < batch; ++b) {
    const float* zb = z.data() + b * seq_len;
    for (int64_t i = 0; i < seq_len; ++i) order[i] = i;
    // Highest first; ties to the earlier row, so the choice is deterministic.
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return zb[a] > zb[c]; });
    const float m = k < seq_len ? 0.5f * (zb[order[k - 1]] + zb[order[k]]) : zb[order[k - 1]] - 1.0f;
    Routing::Pivots p;
    p.a_row = b * seq_len + order[k - 1];
    p.a_z = zb[order[k - 1]];
    if (k < seq_len) {
      p.b_row = b * seq_len + order[k];
      p.b_z = zb[order[k]];
    }
    r->pivots.push_back(p);
    std::vector<int64_t> chosen(order.begin(), order.begin() + k);
    std::sort(chosen.begin(), chosen.end());
    for (int64_t i : chosen) {
      r->rows.push_back(b * seq_len + i);
      r->z.push_back(zb[i]);
      r->gate.push_back(1.0f / (1.0f + std::exp(m - zb[i])));
      r->seq.push_back(b);
    }
  }
}

void route_backward(const Routing& r, const float* h, int64_t dim, const float* u, float tau, const float* dgate,
                    float* dh, float* du, float* dtau) {
  const double n = norm_of(u, dim);
  const float inv = static_cast<float>(1.0 / std::max(n, 1e-30));
  std::vector<double> acc(du ? dim : 0, 0.0);
  // z = h . u / |u|: dz/dh = u / |u|; dz/du = (h - z u / |u|) / |u|.
  auto through_score = [&](int64_t row, float z, float dz) {
    const float* hi = h + row * dim;
    kernels::vec_axpy(dz * inv, u, dh + row * dim, dim);
    if (du)
      for (int64_t k = 0; k < dim; ++k) acc[k] += double(dz) * (hi[k] - z * u[k] * inv) * inv;
  };
  // Top-k: gate = sigmoid(z - m), m = (z_a + z_b) / 2 of the sequence's pivots (or z_a - 1).
  std::vector<float> pivot_sum(r.pivots.size(), 0.0f);
  for (size_t j = 0; j < r.rows.size(); ++j) {
    const float g = r.gate[j];
    const float dz = dgate[j] * g * (1.0f - g);
    through_score(r.rows[j], r.z[j], dz);
    if (!r.pivots.empty()) pivot_sum[r.seq[j]] += dz;
  }
  for (size_t b = 0; b < r.pivots.size(); ++b) {
    const Routing::Pivots& p = r.pivots[b];
    const float share = p.b_row >= 0 ? 0.5f : 1.0f;
    through_score(p.a_row, p.a_z, -share * pivot_sum[b]);
    if (p.b_row >= 0) through_score(p.b_row, p.b_z, -share * pivot_sum[b]);
  }
  if (du)
    for (int64_t k = 0; k < dim; ++k) du[k] += static_cast<float>(acc[k]);
  if (dtau && std::isfinite(r.quantile)) *dtau += kThresholdRate * (tau - r.quantile);
}

}  // namespace longctx::layers
