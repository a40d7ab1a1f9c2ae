// ALiBi (Press et al. 2021, "Train Short, Test Long"): a per-head linear penalty added to the
// attention scores, score(i, j) += -slope[h] * (i - j). Slopes are geometric starting at
// 2^(-8/heads); for a head count that is not a power of two, the paper's rule takes the slopes
// of the next lower power of two n, then every other slope of 2n, until `heads` are filled.
#pragma once
#include <cmath>
#include <vector>

namespace longctx::position {

inline std::vector<float> alibi_slopes(int heads) {
  auto pow2_slopes = [](int n) {
    std::vector<double> s(n);
    const double start = std::pow(2.0, -8.0 / n);
    for (int i = 0; i < n; ++i) s[i] = std::pow(start, i + 1);
    return s;
  };
  std::vector<float> out;
  int n = 1;
  while (n * 2 <= heads) n *= 2;
  for (double v : pow2_slopes(n)) out.push_back(static_cast<float>(v));
  if (n < heads) {
    std::vector<double> extra = pow2_slopes(2 * n);
    for (int i = 0; static_cast<int>(out.size()) < heads; i += 2) out.push_back(static_cast<float>(extra[i]));
  }
  return out;
}

}  // namespace longctx::position
