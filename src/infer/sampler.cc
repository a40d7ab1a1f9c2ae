#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <unordered_set>

namespace longctx::infer {

Status SamplerOptions::validate() const {
  if (!(temp >= 0) || !std::isfinite(temp)) return Status::Error("setting 'temp' must be >= 0");
  if (top_k < 0) return Status::Error("setting 'top_k' must be >= 0");
  if (!(top_p > 0 && top_p <= 1)) return Status::Error("setting 'top_p' must be in (0, 1]");
  if (!(min_p >= 0 && min_p < 1)) return Status::Error("setting 'min_p' must be in [0, 1)");
  if (!(repeat_penalty > 0)) return Status::Error("setting 'repeat_penalty' must be > 0");
  if (repeat_last_n < 0) return Status::Error("setting 'repeat_last_n' must be >= 0");
  return Status::Ok();
}

int32_t Sampler::sample(float* logits, int64_t vocab, std::span<const int32_t> history) {
  if (opt_.repeat_penalty != 1.0f && opt_.repeat_last_n > 0) {
    std::unordered_set<int32_t> seen;
    const size_t from = history.size() > size_t(opt_.repeat_last_n) ? history.size() - opt_.repeat_last_n : 0;
    for (size_t i = from; i < history.size(); ++i) {
      const int32_t t = history[i];
      if (t < 0 || t >= vocab || !seen.insert(t).second) continue;
      logits[t] = logits[t] > 0 ? logits[t] / opt_.repeat_penalty : logits[t] * opt_.repeat_penalty;
    }
  }
  if (opt_.temp == 0.0f) return static_cast<int32_t>(std::max_element(logits, logits + vocab) - logits);

  cand_.clear();
  for (int64_t i = 0; i < vocab; ++i) cand_.emplace_back(logits[i] / opt_.temp, static_cast<int32_t>(i));
  auto more_likely = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t n = cand_.size();
  // cand_[0, sorted) holds the most likely candidates in order; the rest is sorted only as far
  // as a step below needs it (with top_k off, the draw usually ends in the first few dozen of a
  // vocabulary of tens of thousands).
  size_t sorted = 0;
  if (opt_.top_k > 0 && size_t(opt_.top_k) < n) {
    std::partial_sort(cand_.begin(), cand_.begin() + opt_.top_k, cand_.end(), more_likely);
    n = sorted = opt_.top_k;
  }
  auto sort_through = [&](size_t i) {  // makes cand_[i] the (i+1)-th most likely
    if (i < sorted) return;
    const size_t k = std::min(n, std::max({i + 1, sorted * 4, size_t{64}}));
    std::partial_sort(cand_.begin() + sorted, cand_.begin() + k, cand_.begin() + n, more_likely);
    sorted = k;
  };
  // Softmax over the candidates kept so far.
  float m = cand_[0].first;
  for (size_t i = 1; i < n; ++i) m = std::max(m, cand_[i].first);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) {
    cand_[i].first = std::exp(cand_[i].first - m);
    sum += cand_[i].first;
  }
  for (size_t i = 0; i < n; ++i) cand_[i].first = static_cast<float>(cand_[i].first / sum);
  if (opt_.min_p > 0) {
    sort_through(0);
    const float floor = opt_.min_p * cand_[0].first;
    size_t keep = 1;
    for (; keep < n; ++keep) {
      sort_through(keep);
      if (cand_[keep].first < floor) break;
    }
    n = keep;
  }
  if (opt_.top_p < 1.0f) {
    double c = 0;
    size_t keep = 0;
    while (keep < n) {
      sort_through(keep);
      c += cand_[keep].first;
      ++keep;
      if (c >= opt_.top_p) break;
    }
    n = keep;
  }
  double total = 0;
  for (size_t i = 0; i < n; ++i) total += cand_[i].first;
  double r = rng_.uniform() * total;
  for (size_t i = 0; i < n; ++i) {
    sort_through(i);
    r -= cand_[i].first;
    if (r < 0) return cand_[i].second;
  }
  sort_through(n - 1);
  return cand_[n - 1].second;
}

}  // namespace longctx::infer
