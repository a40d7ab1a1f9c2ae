// Sinusoidal position encoding (Vaswani et al. 2017), added to the token embeddings:
// PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim)).
#pragma once
#include <cmath>
#include <cstdint>

namespace longctx::position {

// x: [seq_len, dim] rows of one sequence at positions pos0.. ; adds PE in place.
inline void sinusoidal_add(float* x, int64_t seq_len, int64_t dim, int64_t pos0) {
  for (int64_t t = 0; t < seq_len; ++t) {
    const double p = static_cast<double>(pos0 + t);
    float* row = x + t * dim;
    for (int64_t i = 0; 2 * i < dim; ++i) {
      double a = p / std::pow(10000.0, 2.0 * i / dim);
      row[2 * i] += static_cast<float>(std::sin(a));
      if (2 * i + 1 < dim) row[2 * i + 1] += static_cast<float>(std::cos(a));
    }
  }
}

}  // namespace longctx::position
