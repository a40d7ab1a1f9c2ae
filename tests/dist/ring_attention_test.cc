// Ring attention against the single-process tiled attention: every rank builds the whole
// sequence, runs attention::tiled_forward / tiled_backward over all of it, and checks its own
// zig-zag rows of the ring's out, lse, dq, dk and dv against them. Run alone (one rank: two
// chunks merged) and under mpirun with 2 and 3 ranks (CTest dist_ring_attention_mpi*).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "dist/ring_attention.h"
#include "position/alibi.h"

namespace longctx::dist {
namespace {

Group& group() {
  auto g = Group::world();
  EXPECT_TRUE(g.ok()) << g.status().message();
  return g.ok() ? **g : Group::single();
}

struct Case {
  std::string name;
  int64_t total;
  int heads, kv_heads, head_dim;
  attention::Pattern pattern;
  bool alibi;
};

std::vector<float> randn(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = static_cast<float>(rng.normal());
  return x;
}

void expect_near_rows(const std::string& what, const float* got, const float* want, int64_t n, double tol) {
  double worst = 0;
  int64_t at = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::abs(double(got[i]) - want[i]) / (1.0 + std::abs(double(want[i])));
    if (!(d <= worst)) worst = d, at = i;  // NaN counts as worst
  }
  EXPECT_LE(worst, tol) << what << ": worst at " << at << ": " << got[at] << " vs " << want[at];
}

void run(const Case& tc) {
  Group& g = group();
  ThreadPool& pool = ThreadPool::global();
  const int N = g.size(), r = g.rank();
  RingLayout lay{tc.total * N, N, r};  // total scales with the ranks: chunk lengths stay the case's
  const int64_t n = lay.total, c = lay.chunk(), rows = lay.local_rows();
  const int H = tc.heads, G = tc.kv_heads, hd = tc.head_dim;
  const int64_t qs = int64_t(H) * hd, ks = int64_t(G) * hd;
  ASSERT_TRUE(check_ring(tc.pattern, n, N).ok());
  // Inputs over the whole sequence, the same on every rank.
  const auto q = randn(n * qs, 1), k = randn(n * ks, 2), v = randn(n * ks, 3), dout = randn(n * qs, 4);
  const std::vector<float> slopes = position::alibi_slopes(H);
  const float* sl = tc.alibi ? slopes.data() : nullptr;

  // Reference: one process, the whole sequence.
  attention::AttentionDims d;
  d.seq_len = d.kv_len = n;
  d.heads = H;
  d.kv_heads = G;
  d.head_dim = hd;
  d.q_stride = qs;
  d.kv_stride = ks;
  d.kv_batch_stride = n * ks;
  const attention::MaskView mask(tc.pattern, n);
  const attention::AttentionSpec spec{&mask, sl, 0.0f};
  std::vector<float> out(n * qs), lse(H * n), dq(n * qs), dk(n * ks, 0.0f), dv(n * ks, 0.0f);
  attention::tiled_forward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data());
  attention::tiled_backward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(), dq.data(),
                            dk.data(), dv.data());

  // This rank's rows.
  auto local = [&](const std::vector<float>& x, int64_t width) {
    std::vector<float> y(rows * width);
    for (int64_t t = 0; t < rows; ++t)
      std::copy(x.begin() + lay.position(t) * width, x.begin() + (lay.position(t) + 1) * width, y.begin() + t * width);
    return y;
  };
  const auto lq = local(q, qs), lk = local(k, ks), lv = local(v, ks), ldo = local(dout, qs);
  RingSpec rs;
  rs.pattern = tc.pattern;
  rs.alibi_slopes = sl;
  const RingDims rd{H, G, hd};
  std::vector<float> rout(rows * qs), rlse(2 * H * c), rdq(rows * qs), rdk(rows * ks, 0.0f), rdv(rows * ks, 0.0f);
  RingStats st;
  ring_forward(g, pool, lay, rd, rs, lq.data(), lk.data(), lv.data(), rout.data(), rlse.data(), &st);
  ring_backward(g, pool, lay, rd, rs, lq.data(), lk.data(), lv.data(), rout.data(), rlse.data(), ldo.data(), rdq.data(),
                rdk.data(), rdv.data(), &st);

  std::vector<float> want_lse(2 * H * c);
  for (int64_t t = 0; t < rows; ++t)
    for (int h = 0; h < H; ++h) want_lse[(t / c) * H * c + int64_t(h) * c + t % c] = lse[int64_t(h) * n + lay.position(t)];
  const std::string at = tc.name + " rank " + std::to_string(r) + "/" + std::to_string(N);
  expect_near_rows(at + " out", rout.data(), local(out, qs).data(), rows * qs, 2e-5);
  expect_near_rows(at + " lse", rlse.data(), want_lse.data(), 2 * H * c, 2e-5);
  expect_near_rows(at + " dq", rdq.data(), local(dq, qs).data(), rows * qs, 5e-5);
  expect_near_rows(at + " dk", rdk.data(), local(dk, ks).data(), rows * ks, 5e-5);
  expect_near_rows(at + " dv", rdv.data(), local(dv, ks).data(), rows * ks, 5e-5);
  if (N > 1) {
    // Forward: N - 1 hops of K and V; backward: N - 1 of K and V, N of dK and dV.
    const int64_t share = rows * ks * static_cast<int64_t>(sizeof(float));
    EXPECT_EQ(st.bytes_sent, 2 * share * (N - 1) + 2 * share * (N - 1) + 2 * share * N) << at;
  }
}

// Chunk lengths per rank pair (the sequence is 2 x ranks chunks): uneven against the 256-row
// tiles, windows shorter and longer than a chunk, MHA / GQA / MQA, ALiBi.
TEST(RingAttention, CausalMha) { run({"causal", 2 * 37, 4, 4, 16, attention::Causal{}, false}); }
TEST(RingAttention, CausalGqaAlibi) { run({"causal gqa alibi", 2 * 150, 4, 2, 32, attention::Causal{}, true}); }
TEST(RingAttention, CausalMqaLongChunks) { run({"causal mqa", 2 * 300, 4, 1, 16, attention::Causal{}, false}); }
TEST(RingAttention, WindowShorterThanAChunk) {
  run({"window 20", 2 * 64, 2, 2, 16, attention::SlidingWindow{20}, false});
}
TEST(RingAttention, WindowAcrossChunksAlibi) {
  run({"window 100 alibi", 2 * 48, 4, 2, 16, attention::SlidingWindow{100}, true});
}

TEST(RingAttention, RefusesWhatItCannotRun) {
  EXPECT_FALSE(check_ring(attention::Causal{}, 30, 4).ok());  // not a multiple of 8
  EXPECT_FALSE(check_ring(attention::Full{}, 64, 2).ok());
  EXPECT_FALSE(check_ring(attention::BigBird{}, 1024, 2).ok());
  EXPECT_TRUE(check_ring(attention::SlidingWindow{5}, 64, 2).ok());
}

}  // namespace
}  // namespace longctx::dist
