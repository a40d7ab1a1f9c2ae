#include "dist/ring_attention.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "core/check.h"
#include "kernels/vec.h"

namespace longctx::dist {

using attention::AttentionDims;
using attention::AttentionSpec;
using attention::MaskView;
using attention::Pattern;

Status check_ring(const Pattern& p, int64_t total, int ranks) {
  if (ranks < 1) return Status::Error("ring attention needs at least one rank");
  if (total <= 0 || total % (2 * int64_t{ranks}) != 0)
    return Status::Error("ring attention: the sequence length " + std::to_string(total) + " must be a multiple of 2 x " +
                         std::to_string(ranks) + " ranks (zig-zag chunks of equal length)");
  if (!std::holds_alternative<attention::Causal>(p) && !std::holds_alternative<attention::SlidingWindow>(p))
    return Status::Error("ring attention runs causal and window:W patterns (masks that depend on distance only), not " +
                         attention::format_pattern(p));
  return Status::Ok();
}

namespace {

std::mutex g_totals_mu;
RingStats g_totals;

void add_totals(const RingStats& s) {
  std::lock_guard<std::mutex> l(g_totals_mu);
  g_totals.bytes_sent += s.bytes_sent;
  g_totals.compute_s += s.compute_s;
  g_totals.wait_s += s.wait_s;
}

using clock = std::chrono::steady_clock;
double since(clock::time_point t0) { return std::chrono::duration<double>(clock::now() - t0).count(); }

// Whether any query of the chunk at qstart sees a key of the chunk at kstart (chunks of c rows,
// disjoint or equal).
bool pair_visible(const Pattern& p, int64_t qstart, int64_t kstart, int64_t c) {
  if (qstart < kstart) return false;  // every key after every query
  if (const auto* w = std::get_if<attention::SlidingWindow>(&p)) {
    const int64_t nearest = qstart - (kstart + c - 1);  // first query, last key
    return nearest < w->window;                           // a query sees keys up to window - 1 back
  }
  return true;
}

// The chunk pair as one call: keys at 0..c-1, queries at their distance from the keys.
AttentionDims pair_dims(const RingDims& d, int64_t c, int64_t q_pos0) {
  AttentionDims a;
  a.batch = 1;
  a.seq_len = c;
  a.kv_len = c;
  a.q_pos0 = q_pos0;
  a.heads = d.heads;
  a.kv_heads = d.kv_heads;
  a.head_dim = d.head_dim;
  a.q_stride = int64_t(d.heads) * d.head_dim;
  a.kv_stride = int64_t(d.kv_heads) * d.head_dim;
  a.kv_batch_stride = c * a.kv_stride;
  return a;
}

// Running (o, l) of one chunk [c, heads * hd] / [heads, c] merged with a part (po, pl): the
// softmax over the union of the key sets, from each set's log-sum-exp.
void merge(ThreadPool& pool, int64_t c, int heads, int hd, float* o, float* l, const float* po, const float* pl) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  pool.parallel_range(c, [&](int64_t t0, int64_t t1, int) {
    for (int64_t t = t0; t < t1; ++t)
      for (int h = 0; h < heads; ++h) {
        const float a = l[int64_t(h) * c + t], b = pl[int64_t(h) * c + t];
        if (b == kNegInf) continue;  // the part saw no key
        float* row = o + t * heads * hd + int64_t(h) * hd;
        const float* prow = po + t * heads * hd + int64_t(h) * hd;
        if (a == kNegInf) {
          std::copy(prow, prow + hd, row);
          l[int64_t(h) * c + t] = b;
          continue;
        }
        const double m = std::max(a, b);
        const double ea = std::exp(double(a) - m), eb = std::exp(double(b) - m), sum = ea + eb;
        const float wa = static_cast<float>(ea / sum), wb = static_cast<float>(eb / sum);
        for (int i = 0; i < hd; ++i) row[i] = wa * row[i] + wb * prow[i];
        l[int64_t(h) * c + t] = static_cast<float>(m + std::log(sum));
      }
  });
}

// One ring hop on a thread of its own, so compute goes on meanwhile.
class Hop {
 public:
  Hop(Group& g, const RingLayout& lay, const float* send, float* recv, int64_t floats, RingStats* st) : st_(st) {
    const int64_t bytes = floats * static_cast<int64_t>(sizeof(float));
    if (st_) st_->bytes_sent += bytes;
    const int dest = (lay.rank + 1) % lay.ranks, src = (lay.rank + lay.ranks - 1) % lay.ranks;
    t_ = std::thread([&g, send, recv, bytes, dest, src] { g.sendrecv(send, recv, bytes, dest, src); });
  }
  ~Hop() { wait(); }
  void wait() {
    if (!t_.joinable()) return;
    const auto t0 = clock::now();
    t_.join();
    if (st_) st_->wait_s += since(t0);
  }

 private:
  RingStats* st_;
  std::thread t_;
};

// Calls f(qi, ki, dims, spec) for each visible pair of this rank's query chunk qi and
// `owner`'s key chunk ki, as one call of the tiled engine.
template <class F>
void for_visible_pairs(const RingLayout& lay, const RingDims& d, const RingSpec& spec, int owner, F&& f) {
  const int64_t c = lay.chunk();
  for (int qi = 0; qi < 2; ++qi)
    for (int ki = 0; ki < 2; ++ki) {
      const int64_t qstart = lay.chunk_start(lay.rank, qi), kstart = lay.chunk_start(owner, ki);
      if (!pair_visible(spec.pattern, qstart, kstart, c)) continue;
      const MaskView mask(spec.pattern, c);
      f(qi, ki, pair_dims(d, c, qstart - kstart), AttentionSpec{&mask, spec.alibi_slopes, spec.scale});
    }
}

// Adds a call's stats to the process totals and to the caller's.
void account(const RingStats& call, RingStats* caller) {
  add_totals(call);
  if (!caller) return;
  caller->bytes_sent += call.bytes_sent;
  caller->compute_s += call.compute_s;
  caller->wait_s += call.wait_s;
}

void check_call(const Group& g, const RingLayout& lay, const RingDims& d, const RingSpec& spec) {
  CHECK_MSG(g.size() == lay.ranks && g.rank() == lay.rank, "ring attention: the layout is for another group");
  const Status s = check_ring(spec.pattern, lay.total, lay.ranks);
  CHECK_MSG(s.ok(), s.message().c_str());
  CHECK(d.heads > 0 && d.kv_heads > 0 && d.heads % d.kv_heads == 0 && d.head_dim > 0);
}

}  // namespace

RingStats ring_totals() {
  std::lock_guard<std::mutex> l(g_totals_mu);
  return g_totals;
}

void ring_forward(Group& g, ThreadPool& pool, const RingLayout& lay, const RingDims& d, const RingSpec& spec,
                  const float* q, const float* k, const float* v, float* out, float* lse, RingStats* caller_stats) {
  check_call(g, lay, d, spec);
  RingStats call;
  RingStats* stats = &call;
  const int N = lay.ranks, r = lay.rank, H = d.heads, hd = d.head_dim;
  const int64_t c = lay.chunk(), rows = lay.local_rows();
  const int64_t qs = int64_t(H) * hd, ks = int64_t(d.kv_heads) * hd;
  std::fill(out, out + rows * qs, 0.0f);
  std::fill(lse, lse + 2 * H * c, -std::numeric_limits<float>::infinity());
  // The share in hand, [K | V], and the one arriving.
  std::vector<float> cur(2 * rows * ks), next(N > 1 ? 2 * rows * ks : 0);
  std::copy(k, k + rows * ks, cur.begin());
  std::copy(v, v + rows * ks, cur.begin() + rows * ks);
  std::vector<float> po(c * qs), pl(H * c);
  for (int s = 0; s < N; ++s) {
    const int owner = (r - s + N) % N;
    std::unique_ptr<Hop> hop;
    if (s + 1 < N) hop = std::make_unique<Hop>(g, lay, cur.data(), next.data(), 2 * rows * ks, stats);
    const auto t0 = clock::now();
    const float* K = cur.data();
    const float* V = K + rows * ks;
    for_visible_pairs(lay, d, spec, owner, [&](int qi, int ki, const AttentionDims& dims, const AttentionSpec& as) {
      attention::tiled_forward(pool, dims, as, q + qi * c * qs, K + ki * c * ks, V + ki * c * ks, po.data(), pl.data(),
                               spec.tiles);
      merge(pool, c, H, hd, out + qi * c * qs, lse + qi * H * c, po.data(), pl.data());
    });
    if (stats) stats->compute_s += since(t0);
    if (hop) {
      hop->wait();
      std::swap(cur, next);
    }
  }
  account(call, caller_stats);
}

void ring_backward(Group& g, ThreadPool& pool, const RingLayout& lay, const RingDims& d, const RingSpec& spec,
                   const float* q, const float* k, const float* v, const float* out, const float* lse,
                   const float* dout, float* dq, float* dk, float* dv, RingStats* caller_stats) {
  check_call(g, lay, d, spec);
  RingStats call;
  RingStats* stats = &call;
  const int N = lay.ranks, r = lay.rank, H = d.heads, hd = d.head_dim;
  const int64_t c = lay.chunk(), rows = lay.local_rows();
  const int64_t qs = int64_t(H) * hd, ks = int64_t(d.kv_heads) * hd, share = rows * ks;
  std::fill(dq, dq + rows * qs, 0.0f);
  // The share in hand: [K | V | dK | dV], the last two its gradients summed so far; K and V
  // of the next step travel during the compute, dK and dV after it (they are being summed).
  std::vector<float> cur(4 * share, 0.0f), next(N > 1 ? 4 * share : 0, 0.0f);
  std::copy(k, k + share, cur.begin());
  std::copy(v, v + share, cur.begin() + share);
  std::vector<float> dq_part(c * qs);
  for (int s = 0; s < N; ++s) {
    const int owner = (r - s + N) % N;
    std::unique_ptr<Hop> hop;
    if (s + 1 < N) hop = std::make_unique<Hop>(g, lay, cur.data(), next.data(), 2 * share, stats);
    const auto t0 = clock::now();
    const float* K = cur.data();
    const float* V = K + share;
    float* dK = cur.data() + 2 * share;
    float* dV = cur.data() + 3 * share;
    for_visible_pairs(lay, d, spec, owner, [&](int qi, int ki, const AttentionDims& dims, const AttentionSpec& as) {
      attention::tiled_backward(pool, dims, as, q + qi * c * qs, K + ki * c * ks, V + ki * c * ks, out + qi * c * qs,
                                lse + qi * H * c, dout + qi * c * qs, dq_part.data(), dK + ki * c * ks, dV + ki * c * ks,
                                spec.tiles);
      kernels::vec_axpy(1.0f, dq_part.data(), dq + qi * c * qs, c * qs);
    });
    if (stats) stats->compute_s += since(t0);
    if (N > 1) {
      if (hop) hop->wait();
      // dK / dV go on to the next rank; after the last step that is their owner.
      const auto t1 = clock::now();
      g.sendrecv(dK, next.data() + 2 * share, 2 * share * static_cast<int64_t>(sizeof(float)), (r + 1) % N,
                 (r + N - 1) % N);
      if (stats) {
        stats->bytes_sent += 2 * share * static_cast<int64_t>(sizeof(float));
        stats->wait_s += since(t1);
      }
      std::swap(cur, next);
    }
  }
  kernels::vec_axpy(1.0f, cur.data() + 2 * share, dk, share);
  kernels::vec_axpy(1.0f, cur.data() + 3 * share, dv, share);
  account(call, caller_stats);
}

}  // namespace longctx::dist
