#include "attention/reference.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace longctx::attention {
namespace {

struct HeadView {
  const AttentionDims& d;
  const AttentionSpec& spec;
  double scale;
  HeadView(const AttentionDims& dims, const AttentionSpec& s)
      : d(dims), spec(s), scale(s.scale > 0 ? s.scale : 1.0 / std::sqrt(static_cast<double>(dims.head_dim))) {
    CHECK(d.heads % d.kv_heads == 0 && spec.mask && spec.mask->kv_len() == d.kv_len);
  }
  const float* qrow(const float* q, int64_t b, int64_t t, int h) const {
    return q + (b * d.seq_len + t) * d.q_stride + int64_t(h) * d.head_dim;
  }
  int64_t kvoff(int64_t b, int64_t j, int g) const {
    return b * d.kv_batch_stride + j * d.kv_stride + int64_t(g) * d.head_dim;
  }
  // Softmax probabilities of query row t of head h over all keys, in double; returns lse.
  // Hidden keys get p = 0; a row with no visible key is all zeros with lse = -inf.
  double probs(const float* q, const float* k, int64_t b, int64_t t, int h, double* p) const {
    const int g = h / (d.heads / d.kv_heads);
    const int64_t qp = d.q_pos0 + t;
    const float* qr = qrow(q, b, t, h);
    double m = -INFINITY;
    for (int64_t j = 0; j < d.kv_len; ++j) {
      if (!spec.mask->visible(qp, j)) {
        p[j] = -INFINITY;
        continue;
      }
      const float* kr = k + kvoff(b, j, g);
      double s = 0;
      for (int i = 0; i < d.head_dim; ++i) s += double(qr[i]) * kr[i];
      s *= scale;
      if (spec.alibi_slopes) s -= double(spec.alibi_slopes[h]) * double(qp - j);
      p[j] = s;
      m = std::max(m, s);
    }
    if (m == -INFINITY) {
      for (int64_t j = 0; j < d.kv_len; ++j) p[j] = 0;
      return -INFINITY;
    }
    double sum = 0;
    for (int64_t j = 0; j < d.kv_len; ++j) sum += (p[j] = p[j] == -INFINITY ? 0.0 : std::exp(p[j] - m));
    for (int64_t j = 0; j < d.kv_len; ++j) p[j] /= sum;
    return m + std::log(sum);
  }
};

}  // namespace

void reference_forward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                       const float* k, const float* v, float* out, float* lse) {
  const HeadView hv(d, spec);
  pool.parallel_for(d.batch * d.heads, [&](int64_t task, int) {
    const int64_t b = task / d.heads;
    const int h = static_cast<int>(task % d.heads);
    const int g = h / (d.heads / d.kv_heads);
    // The whole [seq_len, kv_len] probability matrix of this head, as the name promises.
    std::vector<double> P(d.seq_len * d.kv_len);
    for (int64_t t = 0; t < d.seq_len; ++t) {
      const double l = hv.probs(q, k, b, t, h, P.data() + t * d.kv_len);
      if (lse) lse[(b * d.heads + h) * d.seq_len + t] = static_cast<float>(l);
    }
    std::vector<double> acc(d.head_dim);
    for (int64_t t = 0; t < d.seq_len; ++t) {
      std::fill(acc.begin(), acc.end(), 0.0);
      const double* p = P.data() + t * d.kv_len;
      for (int64_t j = 0; j < d.kv_len; ++j) {
        if (p[j] == 0) continue;
        const float* vr = v + hv.kvoff(b, j, g);
        for (int i = 0; i < d.head_dim; ++i) acc[i] += p[j] * vr[i];
      }
      float* o = out + (b * d.seq_len + t) * d.q_stride + int64_t(h) * d.head_dim;
      for (int i = 0; i < d.head_dim; ++i) o[i] = static_cast<float>(acc[i]);
    }
  });
}

void reference_backward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                        const float* k, const float* v, const float* dout, float* dq, float* dk, float* dv) {
  const HeadView hv(d, spec);
  const int group = d.heads / d.kv_heads;
  const int hd = d.head_dim;
  // One task per (batch, kv head): the query heads of a group all add into the same dK / dV.
  pool.parallel_for(d.batch * d.kv_heads, [&](int64_t task, int) {
    const int64_t b = task / d.kv_heads;
    const int g = static_cast<int>(task % d.kv_heads);
    std::vector<double> dK(d.kv_len * hd, 0.0), dV(d.kv_len * hd, 0.0), p(d.kv_len), dp(d.kv_len), dQ(hd);
    for (int h = g * group; h < (g + 1) * group; ++h) {
      for (int64_t t = 0; t < d.seq_len; ++t) {
        hv.probs(q, k, b, t, h, p.data());
        const float* dor = hv.qrow(dout, b, t, h);
        const float* qr = hv.qrow(q, b, t, h);
        double D = 0;
        for (int64_t j = 0; j < d.kv_len; ++j) {
          if (p[j] == 0) { dp[j] = 0; continue; }
          const float* vr = v + hv.kvoff(b, j, g);
          double s = 0;
          for (int i = 0; i < hd; ++i) s += double(dor[i]) * vr[i];
          dp[j] = s;
          D += p[j] * s;
        }
        std::fill(dQ.begin(), dQ.end(), 0.0);
        for (int64_t j = 0; j < d.kv_len; ++j) {
          if (p[j] == 0) continue;
          const double ds = p[j] * (dp[j] - D) * hv.scale;
          const float* kr = k + hv.kvoff(b, j, g);
          for (int i = 0; i < hd; ++i) {
            dQ[i] += ds * kr[i];
            dK[j * hd + i] += ds * qr[i];
            dV[j * hd + i] += p[j] * dor[i];
          }
        }
        float* dqr = dq + (b * d.seq_len + t) * d.q_stride + int64_t(h) * hd;
        for (int i = 0; i < hd; ++i) dqr[i] = static_cast<float>(dQ[i]);
      }
    }
    for (int64_t j = 0; j < d.kv_len; ++j)
      for (int i = 0; i < hd; ++i) {
        dk[hv.kvoff(b, j, g) + i] += static_cast<float>(dK[j * hd + i]);
        dv[hv.kvoff(b, j, g) + i] += static_cast<float>(dV[j * hd + i]);
      }
  });
}

}  // namespace longctx::attention
