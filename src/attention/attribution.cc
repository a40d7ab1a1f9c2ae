#include "attention/attribution.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "kernels/kv_tile.h"

namespace longctx::attention {

void attention_mass(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q, KvView k,
                    const float* lse, double* mass) {
  CHECK(d.batch == 1 && spec.mask && spec.mask->kv_len() == d.kv_len);
  const int64_t hd = d.head_dim, group = d.heads / d.kv_heads, n = d.seq_len;
  const float scale = spec.scale > 0 ? spec.scale : 1.0f / std::sqrt(static_cast<float>(hd));
  const int64_t row_bytes = k.pages ? k.row_bytes : kernels::kv_row_bytes(k.type, hd);
  const int64_t stride_bytes = k.pages ? k.row_bytes : kernels::kv_row_bytes(k.type, 1) * d.kv_stride;
  // Tiles of keys at multiples of the tile size, so they never straddle a page.
  const int64_t tile = k.pages ? std::min<int64_t>(64, int64_t{1} << k.page_shift) : 64;
  const int64_t first = d.kv_first, t0 = first / tile, tiles = (d.kv_len + tile - 1) / tile - t0;
  if (tiles <= 0 || n <= 0 || first >= d.kv_len) return;
  pool.parallel_for_dynamic(tiles, [&](int64_t ti, int) {
    const int64_t j0 = std::max(first, (t0 + ti) * tile), j1 = std::min(d.kv_len, (t0 + ti + 1) * tile), cols = j1 - j0;
    // Query rows of one KV head's group: row r = t * group + i is query t of head g * group + i.
    std::vector<float> qrows(n * group * hd), s(n * group * cols);
    std::vector<double> acc(cols, 0.0);
    for (int g = 0; g < d.kv_heads; ++g) {
      for (int64_t t = 0; t < n; ++t)
        for (int64_t i = 0; i < group; ++i)
          std::copy_n(q + t * d.q_stride + (g * group + i) * hd, hd, qrows.data() + (t * group + i) * hd);
      const void* kp = k.pages ? static_cast<const void*>(paged_row(k.pages, k.page_shift, k.head_stride, k.row_bytes, g, j0))
                               : static_cast<const void*>(static_cast<const uint8_t*>(k.data) +
                                                          (j0 * d.kv_stride + g * hd) * kernels::kv_row_bytes(k.type, 1));
      kernels::kv_scores(k.type, kp, k.pages ? row_bytes : stride_bytes, cols, qrows.data(), n * group, hd, s.data(), cols);
      for (int64_t t = 0; t < n; ++t) {
        const int64_t qpos = d.q_pos0 + t;
        for (int64_t i = 0; i < group; ++i) {
          const int64_t h = g * group + i;
          const float l = lse[h * n + t];
          if (!std::isfinite(l)) continue;  // the query saw no key
          const float slope = spec.alibi_slopes ? spec.alibi_slopes[h] : 0.0f;
          const float* sr = s.data() + (t * group + i) * cols;
          for (int64_t j = 0; j < cols; ++j) {
            const int64_t kpos = j0 + j;
            if (!spec.mask->visible(qpos, kpos)) continue;
            const float score = scale * sr[j] - slope * static_cast<float>(qpos - kpos);
            acc[j] += std::exp(static_cast<double>(score) - l);
          }
        }
      }
    }
    for (int64_t j = 0; j < cols; ++j) mass[j0 + j] += acc[j];
  });
}

}  // namespace longctx::attention
