#include "attention/attend.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::attention {
namespace {

// Query rows are processed in blocks so that a block's scores stop at its last causal key.
constexpr int64_t kRowBlock = 64;

// Scores -> probabilities for rows [r0, r1) of one head; s is [r1 - r0, ld] holding the raw
// q.k products for keys [0, kend). Masked keys get exactly zero probability.
void softmax_rows(float* s, int64_t ld, int64_t r0, int64_t r1, int64_t kend, int64_t q_pos0,
                  float scale, float slope) {
  for (int64_t r = r0; r < r1; ++r) {
    float* row = s + (r - r0) * ld;
    const int64_t qp = q_pos0 + r;
    const int64_t n = std::min<int64_t>(kend, qp + 1);  // visible keys 0..qp
    if (slope != 0.0f) {
      for (int64_t j = 0; j < n; ++j) row[j] = row[j] * scale - slope * static_cast<float>(qp - j);
    } else {
      kernels::vec_scale(row, scale, n);
    }
    const float m = kernels::vec_max(row, n);
    const float sum = kernels::vec_exp_sum(row, m, n);
    kernels::vec_scale(row, 1.0f / sum, n);
    if (n < ld) std::memset(row + n, 0, (ld - n) * sizeof(float));
  }
}

}  // namespace

void attend_forward(ThreadPool& pool, const AttentionDims& d, const float* q, const float* k,
                    const float* v, const float* alibi_slopes, float* out, float* probs) {
  CHECK(d.heads % d.kv_heads == 0);
  CHECK(d.q_pos0 + d.seq_len <= d.kv_len);
  const int group = d.heads / d.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
  const int64_t hd = d.head_dim;
  pool.parallel_for(d.batch * d.heads, [&](int64_t task, int) {
    const int64_t b = task / d.heads;
    const int h = static_cast<int>(task % d.heads);
    const int g = h / group;
    const float* qb = q + b * d.seq_len * d.q_stride + h * hd;
    const float* kb = k + b * d.kv_batch_stride + g * hd;
    const float* vb = v + b * d.kv_batch_stride + g * hd;
    float* ob = out + b * d.seq_len * d.q_stride + h * hd;
    const float slope = alibi_slopes ? alibi_slopes[h] : 0.0f;
    thread_local std::vector<float> scratch;
    for (int64_t r0 = 0; r0 < d.seq_len; r0 += kRowBlock) {
      const int64_t r1 = std::min(d.seq_len, r0 + kRowBlock);
      const int64_t kend = std::min(d.kv_len, d.q_pos0 + r1);  // keys the block's last row sees
      float* s;
      int64_t ld;
      if (probs) {
        ld = d.kv_len;
        s = probs + ((b * d.heads + h) * d.seq_len + r0) * ld;
      } else {
        ld = kend;
        if (static_cast<int64_t>(scratch.size()) < (r1 - r0) * ld) scratch.resize((r1 - r0) * ld);
        s = scratch.data();
      }
      kernels::gemm_serial(false, true, r1 - r0, kend, hd, 1.0f, qb + r0 * d.q_stride, d.q_stride, kb,
                           d.kv_stride, 0.0f, s, ld);
      softmax_rows(s, ld, r0, r1, kend, d.q_pos0, scale, slope);
      kernels::gemm_serial(false, false, r1 - r0, hd, kend, 1.0f, s, ld, vb, d.kv_stride, 0.0f,
                           ob + r0 * d.q_stride, d.q_stride);
    }
  });
}

void attend_backward(ThreadPool& pool, const AttentionDims& d, const float* q, const float* k,
                     const float* v, const float* probs, const float* dout, float* dq, float* dk,
                     float* dv) {
  CHECK(d.heads % d.kv_heads == 0);
  const int group = d.heads / d.kv_heads;
  const float scale = 1.0f / std::sqrt(static_cast<float>(d.head_dim));
  const int64_t hd = d.head_dim;
  // One task per (batch, kv head): the query heads of a group all add into the same dK / dV.
  pool.parallel_for(d.batch * d.kv_heads, [&](int64_t task, int) {
    const int64_t b = task / d.kv_heads;
    const int g = static_cast<int>(task % d.kv_heads);
    const float* kb = k + b * d.kv_batch_stride + g * hd;
    const float* vb = v + b * d.kv_batch_stride + g * hd;
    float* dkb = dk + b * d.kv_batch_stride + g * hd;
    float* dvb = dv + b * d.kv_batch_stride + g * hd;
    thread_local std::vector<float> ds;
    for (int h = g * group; h < (g + 1) * group; ++h) {
      const float* qb = q + b * d.seq_len * d.q_stride + h * hd;
      const float* dob = dout + b * d.seq_len * d.q_stride + h * hd;
      float* dqb = dq + b * d.seq_len * d.q_stride + h * hd;
      for (int64_t r0 = 0; r0 < d.seq_len; r0 += kRowBlock) {
        const int64_t r1 = std::min(d.seq_len, r0 + kRowBlock);
        const int64_t rows = r1 - r0;
        const int64_t kend = std::min(d.kv_len, d.q_pos0 + r1);
        const float* p = probs + ((b * d.heads + h) * d.seq_len + r0) * d.kv_len;
        const int64_t ldp = d.kv_len;
        // dV[0:kend] += P^T dO
        kernels::gemm_serial(true, false, kend, hd, rows, 1.0f, p, ldp, dob + r0 * d.q_stride, d.q_stride,
                             1.0f, dvb, d.kv_stride);
        // dP = dO V^T ; dS = P * (dP - rowsum(dP * P)) * scale
        if (static_cast<int64_t>(ds.size()) < rows * kend) ds.resize(rows * kend);
        kernels::gemm_serial(false, true, rows, kend, hd, 1.0f, dob + r0 * d.q_stride, d.q_stride, vb,
                             d.kv_stride, 0.0f, ds.data(), kend);
        for (int64_t r = 0; r < rows; ++r) {
          float* dsr = ds.data() + r * kend;
          const float* pr = p + r * ldp;
          const float dot = kernels::vec_dot(dsr, pr, kend);
          for (int64_t j = 0; j < kend; ++j) dsr[j] = pr[j] * (dsr[j] - dot) * scale;
        }
        // dQ = dS K ; dK += dS^T Q
        kernels::gemm_serial(false, false, rows, hd, kend, 1.0f, ds.data(), kend, kb, d.kv_stride, 0.0f,
                             dqb + r0 * d.q_stride, d.q_stride);
        kernels::gemm_serial(true, false, kend, hd, rows, 1.0f, ds.data(), kend, qb + r0 * d.q_stride,
                             d.q_stride, 1.0f, dkb, d.kv_stride);
      }
    }
  });
}

}  // namespace longctx::attention
