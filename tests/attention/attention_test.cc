// The tiled attention driver against the materialised double-precision reference, for every
// pattern x position x head grouping, forward and backward; plus the patterns' own definitions.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "attention/attention.h"
#include "attention/reference.h"
#include "kernels/gemm_bf16.h"
#include "kernels/tile_gemm.h"
#include "core/rng.h"
#include "position/alibi.h"
#include "position/rope.h"
#include "quant/fp16.h"

namespace longctx {
namespace {

using attention::AttentionDims;
using attention::MaskView;
using attention::Pattern;

std::vector<float> randn(int64_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(rng.normal()) * scale;
  return v;
}

// max |a - b| / max |b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::fabs(double(a[i]) - b[i]));
    den = std::max(den, std::fabs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

enum class Pos { kNone, kAlibi, kRope };

// Rotates adjacent pairs of every head in double (independent of position::Rope), sign -1 = inverse.
void rope_double(std::vector<float>& x, int64_t batch, int64_t seq, int heads, int hd, int64_t pos0, int sign) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < seq; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < hd / 2; ++i) {
          float* p = &x[((b * seq + t) * heads + h) * hd + 2 * i];
          const double a = double(pos0 + t) * std::pow(10000.0, -2.0 * i / hd) * sign;
          const double x0 = p[0], x1 = p[1];
          p[0] = static_cast<float>(x0 * std::cos(a) - x1 * std::sin(a));
          p[1] = static_cast<float>(x0 * std::sin(a) + x1 * std::cos(a));
        }
}

struct Case {
  std::string pattern;
  Pos pos;
  int heads, kv_heads;
  int64_t seq_len;
  attention::TileSizes tiles;
};

std::string name_of(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  std::string p = c.pattern;
  for (char& ch : p)
    if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
  const char* pos[] = {"none", "alibi", "rope"};
  return p + "_" + pos[int(c.pos)] + "_h" + std::to_string(c.heads) + "kv" + std::to_string(c.kv_heads) + "_n" +
         std::to_string(c.seq_len) + "_t" + std::to_string(c.tiles.query_rows) + (c.tiles.bf16 ? "_bf16" : "") +
         (c.tiles.fp32_kernels ? "_tk" : "");
}

class TiledVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(TiledVsReference, ForwardAndBackward) {
  const Case& c = GetParam();
  if (c.tiles.bf16 && !kernels::gemm_bf16_supported()) GTEST_SKIP() << "no AMX-BF16 on this CPU";
  if (c.tiles.fp32_kernels && !kernels::tile_gemm_supported()) GTEST_SKIP() << "no AVX-512F on this CPU";
  // bf16 tile products: operands rounded to 8 bits (2^-9 relative), fp32 sums; the errors must
  // stay within a few times that and, in the backward (every tile a product; the forward's
  // sparse tiles may take the fp32 decode kernels), exceed fp32's: the bf16 products ran.
  const double fwd_tol = c.tiles.bf16 ? 2e-2 : 1e-5, bwd_tol = c.tiles.bf16 ? 4e-2 : 1e-4;
  ThreadPool pool(2);
  const int hd = 16;
  const int64_t B = 2, T = c.seq_len;
  AttentionDims d;
  d.batch = B;
  d.seq_len = d.kv_len = T;
  d.heads = c.heads;
  d.kv_heads = c.kv_heads;
  d.head_dim = hd;
  d.q_stride = int64_t(c.heads) * hd;
  d.kv_stride = int64_t(c.kv_heads) * hd;
  d.kv_batch_stride = T * d.kv_stride;
  auto pat = attention::parse_pattern(c.pattern);
  ASSERT_TRUE(pat.ok()) << pat.status().message();
  const MaskView mask(*pat, T);
  std::vector<float> slopes = position::alibi_slopes(c.heads);
  const attention::AttentionSpec spec{&mask, c.pos == Pos::kAlibi ? slopes.data() : nullptr};

  auto q = randn(B * T * d.q_stride, 1), k = randn(B * T * d.kv_stride, 2), v = randn(B * T * d.kv_stride, 3);
  auto dout = randn(B * T * d.q_stride, 4);
  // RoPE acts on Q and K before the kernel: the engine's table for the tiled path, an
  // independent double rotation for the reference.
  std::vector<float> qt = q, kt = k, qr = q, kr = k;
  const position::Rope rope(hd, 10000.0f, T);
  if (c.pos == Pos::kRope) {
    rope.apply(pool, qt.data(), B, T, c.heads, d.q_stride, 0, false);
    rope.apply(pool, kt.data(), B, T, c.kv_heads, d.kv_stride, 0, false);
    rope_double(qr, B, T, c.heads, hd, 0, 1);
    rope_double(kr, B, T, c.kv_heads, hd, 0, 1);
  }

  std::vector<float> out(q.size()), ref_out(q.size()), lse(B * c.heads * T), ref_lse(lse.size());
  attention::tiled_forward(pool, d, spec, qt.data(), kt.data(), v.data(), out.data(), lse.data(), c.tiles);
  attention::reference_forward(pool, d, spec, qr.data(), kr.data(), v.data(), ref_out.data(), ref_lse.data());
  EXPECT_LT(rel_err(out, ref_out), fwd_tol);
  EXPECT_LT(rel_err(lse, ref_lse), fwd_tol);

  std::vector<float> dq(q.size()), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
  std::vector<float> rdq(q.size()), rdk(k.size(), 0.0f), rdv(v.size(), 0.0f);
  attention::tiled_backward(pool, d, spec, qt.data(), kt.data(), v.data(), out.data(), lse.data(), dout.data(),
                            dq.data(), dk.data(), dv.data(), c.tiles);
  attention::reference_backward(pool, d, spec, qr.data(), kr.data(), v.data(), dout.data(), rdq.data(), rdk.data(),
                                rdv.data());
  if (c.pos == Pos::kRope) {  // back through the rotation: the engine's inverse vs the double one
    rope.apply(pool, dq.data(), B, T, c.heads, d.q_stride, 0, true);
    rope.apply(pool, dk.data(), B, T, c.kv_heads, d.kv_stride, 0, true);
    rope_double(rdq, B, T, c.heads, hd, 0, -1);
    rope_double(rdk, B, T, c.kv_heads, hd, 0, -1);
  }
  EXPECT_LT(rel_err(dq, rdq), bwd_tol);
  EXPECT_LT(rel_err(dk, rdk), bwd_tol);
  EXPECT_LT(rel_err(dv, rdv), bwd_tol);
  if (c.tiles.bf16) EXPECT_GT(rel_err(dq, rdq), 1e-4);

  // Bit for bit the same on 1 and 3 threads: the query rows' gradient takes its tiles' shares
  // in a fixed order whichever thread ran them.
  for (int threads : {1, 3}) {
    ThreadPool other(threads);
    std::vector<float> dq2(q.size()), dk2(k.size(), 0.0f), dv2(v.size(), 0.0f);
    attention::tiled_backward(other, d, spec, qt.data(), kt.data(), v.data(), out.data(), lse.data(), dout.data(),
                              dq2.data(), dk2.data(), dv2.data(), c.tiles);
    if (c.pos == Pos::kRope) {
      rope.apply(pool, dq2.data(), B, T, c.heads, d.q_stride, 0, true);
      rope.apply(pool, dk2.data(), B, T, c.kv_heads, d.kv_stride, 0, true);
    }
    EXPECT_EQ(dq2, dq) << threads << " threads";
    EXPECT_EQ(dk2, dk) << threads << " threads";
    EXPECT_EQ(dv2, dv) << threads << " threads";
  }
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  const char* patterns[] = {"causal", "full", "window:5", "window:40", "bigbird:8,3,1,2", "bigbird-bi:8,3,1,2,7"};
  const int groups[][2] = {{4, 4}, {4, 2}, {4, 1}};
  for (const char* p : patterns)
    for (Pos pos : {Pos::kNone, Pos::kAlibi, Pos::kRope})
      for (auto& g : groups) {
        out.push_back({p, pos, g[0], g[1], 64, {16, 16}});  // multiple of every tile size
        out.push_back({p, pos, g[0], g[1], 77, {24, 32}});  // and not
      }
  // Default tile sizes, a length past one default tile, and 3 heads (ALiBi's odd rule).
  out.push_back({"causal", Pos::kAlibi, 6, 3, 300, {}});
  out.push_back({"window:100", Pos::kAlibi, 3, 1, 300, {}});
  out.push_back({"bigbird:32,3,2,2", Pos::kNone, 2, 2, 300, {}});
  // bf16 tile products (TileSizes::bf16): causal, windowed and BigBird; MHA, GQA and MQA.
  for (const char* p : {"causal", "window:40", "bigbird:8,3,1,2"})
    for (Pos pos : {Pos::kNone, Pos::kAlibi, Pos::kRope})
      for (auto& g : groups) {
        attention::TileSizes t{24, 32};
        t.bf16 = true;
        out.push_back({p, pos, g[0], g[1], 77, t});
      }
  attention::TileSizes big;
  big.bf16 = true;
  out.push_back({"causal", Pos::kAlibi, 6, 3, 300, big});
  // fp32 tile products on kernels::tile_gemm (TileSizes::fp32_kernels), every pattern.
  for (const char* p : patterns)
    for (Pos pos : {Pos::kNone, Pos::kAlibi, Pos::kRope})
      for (auto& g : groups) {
        attention::TileSizes t{24, 32};
        t.fp32_kernels = true;
        out.push_back({p, pos, g[0], g[1], 77, t});
      }
  attention::TileSizes tk;
  tk.fp32_kernels = true;
  out.push_back({"causal", Pos::kAlibi, 6, 3, 300, tk});
  return out;
}

INSTANTIATE_TEST_SUITE_P(All, TiledVsReference, ::testing::ValuesIn(all_cases()), name_of);

AttentionDims dims(int heads, int kv_heads, int hd, int64_t seq, int64_t kv_len, int64_t pos0) {
  AttentionDims d;
  d.seq_len = seq;
  d.kv_len = kv_len;
  d.q_pos0 = pos0;
  d.heads = heads;
  d.kv_heads = kv_heads;
  d.head_dim = hd;
  d.q_stride = int64_t(heads) * hd;
  d.kv_stride = int64_t(kv_heads) * hd;
  d.kv_batch_stride = kv_len * d.kv_stride;
  return d;
}

// A query's output and the gradients reaching keys it does not see: hidden keys get exactly
// zero weight, so changing them changes nothing, bit for bit, and they receive zero gradient.
TEST(TiledAttention, HiddenKeysGetExactlyZeroWeight) {
  ThreadPool pool(2);
  for (const char* ps : {"causal", "window:7", "bigbird:8,1,1,1", "bigbird-bi:8,1,1,1"}) {
    SCOPED_TRACE(ps);
    const int64_t T = 70;
    const AttentionDims d = dims(2, 1, 8, T, T, 0);
    const MaskView mask(*attention::parse_pattern(ps), T);
    const attention::AttentionSpec spec{&mask, nullptr};
    auto q = randn(T * 16, 1), k = randn(T * 8, 2), v = randn(T * 8, 3);
    std::vector<float> out(q.size()), lse(2 * T);
    attention::tiled_forward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), {16, 16});
    for (int64_t row : {int64_t(5), int64_t(40), int64_t(69)}) {
      auto k2 = k, v2 = v;
      int hidden = 0;
      for (int64_t j = 0; j < T; ++j)
        if (!mask.visible(row, j)) {
          ++hidden;
          for (int i = 0; i < 8; ++i) k2[j * 8 + i] = 1e4f, v2[j * 8 + i] = -1e6f;
        }
      if (row >= 8 && row < T - 1) EXPECT_GT(hidden, 0);  // not a global query, not the last
      std::vector<float> out2(q.size()), lse2(2 * T);
      attention::tiled_forward(pool, d, spec, q.data(), k2.data(), v2.data(), out2.data(), lse2.data(), {16, 16});
      for (int i = 0; i < 16; ++i) EXPECT_EQ(out2[row * 16 + i], out[row * 16 + i]) << "row " << row;
      // Gradient of row `row` alone.
      std::vector<float> dout(q.size(), 0.0f);
      for (int i = 0; i < 16; ++i) dout[row * 16 + i] = 1.0f + i;
      std::vector<float> dq(q.size()), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
      attention::tiled_backward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), dout.data(),
                                dq.data(), dk.data(), dv.data(), {16, 16});
      for (int64_t j = 0; j < T; ++j)
        if (!mask.visible(row, j))
          for (int i = 0; i < 8; ++i) {
            EXPECT_EQ(dk[j * 8 + i], 0.0f) << "key " << j;
            EXPECT_EQ(dv[j * 8 + i], 0.0f) << "key " << j;
          }
    }
  }
}

TEST(TiledAttention, WindowCoveringTheSequenceEqualsCausal) {
  ThreadPool pool(2);
  const int64_t T = 100;
  const AttentionDims d = dims(4, 2, 16, T, T, 0);
  auto q = randn(T * 64, 1), k = randn(T * 32, 2), v = randn(T * 32, 3);
  const MaskView causal(attention::Causal{}, T), wide(attention::SlidingWindow{5000}, T);
  std::vector<float> a(q.size()), b(q.size()), c(q.size());
  attention::tiled_forward(pool, d, {&causal}, q.data(), k.data(), v.data(), a.data(), nullptr);
  const MaskView w_eq(attention::SlidingWindow{T}, T);
  attention::tiled_forward(pool, d, {&w_eq}, q.data(), k.data(), v.data(), b.data(), nullptr);
  attention::tiled_forward(pool, d, {&wide}, q.data(), k.data(), v.data(), c.data(), nullptr);
  EXPECT_LT(rel_err(b, a), 1e-6);
  EXPECT_LT(rel_err(c, a), 1e-6);
}

// Rows computed with a query offset over the full key set equal the same rows of one full pass,
// for every pattern (the path chunked prefill and decoding take).
TEST(TiledAttention, QueryOffsetEqualsRowsOfFullComputation) {
  ThreadPool pool(2);
  const int64_t T = 90;
  for (const char* ps : {"causal", "window:11", "bigbird:8,3,1,2", "full"}) {
    for (int64_t p0 : {int64_t(1), int64_t(37), int64_t(64), int64_t(89)}) {
      SCOPED_TRACE(std::string(ps) + " pos0 " + std::to_string(p0));
      const auto pat = *attention::parse_pattern(ps);
      std::vector<float> slopes = position::alibi_slopes(4);
      auto q = randn(T * 64, 1), k = randn(T * 16, 2), v = randn(T * 16, 3), dout = randn(T * 64, 4);
      const AttentionDims full = dims(4, 1, 16, T, T, 0);
      const MaskView mf(pat, T);
      std::vector<float> out(q.size()), lse(4 * T);
      attention::tiled_forward(pool, full, {&mf, slopes.data()}, q.data(), k.data(), v.data(), out.data(), lse.data(),
                               {16, 16});
      const AttentionDims part = dims(4, 1, 16, T - p0, T, p0);
      const MaskView mp(pat, T, p0, T);
      std::vector<float> out2((T - p0) * 64), lse2(4 * (T - p0));
      attention::tiled_forward(pool, part, {&mp, slopes.data()}, q.data() + p0 * 64, k.data(), v.data(), out2.data(),
                               lse2.data(), {16, 16});
      std::vector<float> want(out.begin() + p0 * 64, out.end());
      EXPECT_LT(rel_err(out2, want), 1e-6);
      // dQ of those rows depends only on those rows.
      std::vector<float> dout_part(dout.begin() + p0 * 64, dout.end());
      std::vector<float> dout_masked(dout.size(), 0.0f);
      std::copy(dout_part.begin(), dout_part.end(), dout_masked.begin() + p0 * 64);
      std::vector<float> dq(q.size()), dk(k.size(), 0.0f), dv(v.size(), 0.0f);
      attention::tiled_backward(pool, full, {&mf, slopes.data()}, q.data(), k.data(), v.data(), out.data(),
                                lse.data(), dout_masked.data(), dq.data(), dk.data(), dv.data(), {16, 16});
      std::vector<float> dq2(out2.size()), dk2(k.size(), 0.0f), dv2(v.size(), 0.0f);
      attention::tiled_backward(pool, part, {&mp, slopes.data()}, q.data() + p0 * 64, k.data(), v.data(), out2.data(),
                                lse2.data(), dout_part.data(), dq2.data(), dk2.data(), dv2.data(), {16, 16});
      std::vector<float> want_dq(dq.begin() + p0 * 64, dq.end());
      EXPECT_LT(rel_err(dq2, want_dq), 1e-5);
      EXPECT_LT(rel_err(dk2, dk), 1e-5);
      EXPECT_LT(rel_err(dv2, dv), 1e-5);
    }
  }
}

// The paper's slopes: 8 heads 2^-1 ... 2^-8; 12 heads the 8-head slopes, then every other
// slope of 16 heads (2^-0.5, 2^-1.5, 2^-2.5, 2^-3.5).
TEST(Alibi, SlopesMatchThePaper) {
  const auto s8 = position::alibi_slopes(8);
  ASSERT_EQ(s8.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(s8[i], std::ldexp(1.0f, -(i + 1)));
  const auto s12 = position::alibi_slopes(12);
  ASSERT_EQ(s12.size(), 12u);
  const double want[12] = {0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625,
                           0.7071067811865476, 0.3535533905932738, 0.1767766952966369, 0.08838834764831845};
  for (int i = 0; i < 12; ++i) EXPECT_FLOAT_EQ(s12[i], static_cast<float>(want[i])) << i;
}

// BigBird's visited key blocks, read back from the spans the drivers use, equal the definition.
TEST(BigBird, VisitedBlocksEqualTheDefinition) {
  for (bool causal : {true, false}) {
    const int64_t b = 16, n_blocks = 40, T = b * n_blocks - 5;  // a partial last block
    const attention::BigBird bb{b, 3, 2, 3, 11, causal};
    const MaskView mask(bb, T);
    std::set<std::vector<int64_t>> distinct_random;
    for (int64_t qb = 0; qb < n_blocks; ++qb) {
      std::set<int64_t> want;
      for (int64_t kb = 0; kb < n_blocks; ++kb) {
        const bool in_window = causal ? (kb <= qb && kb > qb - 3) : (kb >= qb - 1 && kb <= qb + 1);
        if (kb < 2 || qb < 2 || in_window) want.insert(kb);
      }
      const auto& rnd = mask.random_blocks(qb);
      if (qb >= 2) {
        int64_t candidates = 0;  // blocks neither global nor in the window (causal: before it)
        for (int64_t kb = 2; kb < (causal ? qb - 2 : n_blocks); ++kb)
          candidates += causal || kb < qb - 1 || kb > qb + 1;
        EXPECT_EQ(static_cast<int64_t>(rnd.size()), std::min<int64_t>(3, candidates)) << "query block " << qb;
        std::set<int64_t> uniq(rnd.begin(), rnd.end());
        EXPECT_EQ(uniq.size(), rnd.size()) << "random blocks repeat";
        for (int64_t kb : rnd) {
          EXPECT_EQ(want.count(kb), 0u) << "random block " << kb << " duplicates window/global of " << qb;
          if (causal) EXPECT_LT(kb, qb - 2) << "causal random block not before the window";
          EXPECT_LT(kb, n_blocks);
          want.insert(kb);
        }
        distinct_random.insert(rnd);
      }
      if (causal)
        for (auto it = want.begin(); it != want.end();) it = *it > qb ? want.erase(it) : std::next(it);
      std::vector<attention::KeySpan> spans;
      mask.key_spans(qb * b, std::min(T, (qb + 1) * b), &spans);
      std::set<int64_t> got;
      for (const auto& s : spans)
        for (int64_t kb = s.lo / b; kb * b < s.hi; ++kb) got.insert(kb);
      EXPECT_EQ(got, want) << "query block " << qb << (causal ? " causal" : " bidirectional");
      // A causal BigBird never looks ahead.
      if (causal)
        for (int64_t q = qb * b; q < std::min(T, (qb + 1) * b); ++q)
          for (int64_t k = q + 1; k < T; ++k) ASSERT_FALSE(mask.visible(q, k));
    }
    EXPECT_GT(distinct_random.size(), 5u) << "random blocks should differ between query blocks";
    // Same seed, same blocks; another seed, other blocks.
    const MaskView again(bb, T);
    attention::BigBird other = bb;
    other.seed = 12;
    const MaskView reseeded(other, T);
    int differ = 0;
    for (int64_t qb = 2; qb < n_blocks; ++qb) {
      EXPECT_EQ(again.random_blocks(qb), mask.random_blocks(qb));
      differ += reseeded.random_blocks(qb) != mask.random_blocks(qb);
    }
    EXPECT_GT(differ, 5);
  }
}

// Spans (any query range, aligned or not) agree with the dense mask: every visible pair lies in a
// span, unmasked spans are visible to every query of the range, row spans are exact.
TEST(Patterns, SpansAgreeWithTheDenseMask) {
  const int64_t T = 150;
  for (const char* ps : {"full", "causal", "window:1", "window:17", "window:400", "bigbird:8,3,2,2", "bigbird:7,2,0,4",
                         "bigbird-bi:8,3,1,2", "bigbird-bi:5,1,0,3,9"}) {
    SCOPED_TRACE(ps);
    const auto pat = *attention::parse_pattern(ps);
    const MaskView mask(pat, T);
    for (int64_t q_lo : {int64_t(0), int64_t(3), int64_t(31), int64_t(100)}) {
      for (int64_t len : {int64_t(1), int64_t(13), int64_t(32)}) {
        const int64_t q_hi = std::min(T, q_lo + len);
        std::vector<attention::KeySpan> spans;
        mask.key_spans(q_lo, q_hi, &spans);
        std::vector<int> cover(T, 0);  // 0 none, 1 masked, 2 unmasked
        for (size_t i = 0; i < spans.size(); ++i) {
          ASSERT_LT(spans[i].lo, spans[i].hi);
          if (i) ASSERT_LE(spans[i - 1].hi, spans[i].lo);
          for (int64_t k = spans[i].lo; k < spans[i].hi; ++k) cover[k] = spans[i].masked ? 1 : 2;
        }
        for (int64_t q = q_lo; q < q_hi; ++q) {
          std::vector<attention::KeySpan> rs;
          mask.row_spans(q, 0, T, &rs);
          std::vector<bool> in_row(T, false);
          for (const auto& s : rs) {
            EXPECT_FALSE(s.masked);
            for (int64_t k = s.lo; k < s.hi; ++k) in_row[k] = true;
          }
          for (int64_t k = 0; k < T; ++k) {
            const bool vis = mask.visible(q, k);
            EXPECT_EQ(in_row[k], vis) << "row span q " << q << " k " << k;
            if (vis) EXPECT_NE(cover[k], 0) << "q " << q << " k " << k;
            if (cover[k] == 2) EXPECT_TRUE(vis) << "unmasked span hides q " << q << " k " << k;
          }
          // The oldest key bound holds.
          for (int64_t k = 0; k < mask.oldest_key(q); ++k) EXPECT_FALSE(mask.visible(q, k));
        }
      }
    }
  }
}

TEST(Patterns, ParseAndFormat) {
  for (const char* s : {"full", "causal", "window:512", "bigbird:64,3,2,3", "bigbird-bi:64,3,2,3,5"}) {
    auto p = attention::parse_pattern(s);
    ASSERT_TRUE(p.ok()) << s;
    EXPECT_EQ(attention::format_pattern(*p), s);
  }
  auto list = attention::parse_pattern_list("window:256,bigbird:64,3,2,3,causal");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 3u);
  EXPECT_EQ(attention::format_pattern((*list)[1]), "bigbird:64,3,2,3");
  for (const char* bad : {"", "window", "window:0", "window:-3", "window:x", "bigbird:64,3", "bigbird:0,3,2,3",
                          "bigbird:64,0,2,3", "sparse", "causal,", "bigbird:64,3,2,3,1,2"}) {
    auto p = attention::parse_pattern_list(bad);
    EXPECT_FALSE(p.ok()) << "accepted '" << bad << "'";
  }
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

// Decoding and short chunks over a long cache: few (kv head, query block) tasks, so the key
// tiles are split across tasks and merged (split-K). Against the reference, for MHA, GQA and
// MQA, causal, windowed and ALiBi; and bit for bit the same on 1 and 2 threads.
TEST(TiledAttention, SplitKeysDecodeMatchesReference) {
  ThreadPool one(1), two(2);
  struct Shape { int heads, kv_heads; int64_t seq, kv_len; attention::TileSizes tiles; };
  const Shape shapes[] = {{4, 4, 1, 700, {16, 16}}, {4, 2, 3, 700, {16, 16}}, {4, 1, 1, 3000, {}},
                          {6, 3, 2, 2100, {}}};
  for (const char* ps : {"causal", "window:100"})
    for (bool alibi : {false, true})
      for (const Shape& sh : shapes) {
        SCOPED_TRACE(std::string(ps) + (alibi ? " alibi " : " ") + std::to_string(sh.heads) + "/" +
                     std::to_string(sh.kv_heads) + " seq " + std::to_string(sh.seq) + " kv " + std::to_string(sh.kv_len));
        const int hd = 16;
        const int64_t pos0 = sh.kv_len - sh.seq;
        AttentionDims d = dims(sh.heads, sh.kv_heads, hd, sh.seq, sh.kv_len, pos0);
        const MaskView mask(*attention::parse_pattern(ps), sh.kv_len, pos0, pos0 + sh.seq);
        std::vector<float> slopes(sh.heads);
        for (int h = 0; h < sh.heads; ++h) slopes[h] = 0.01f * (h + 1);
        const attention::AttentionSpec spec{&mask, alibi ? slopes.data() : nullptr};
        auto q = randn(sh.seq * sh.heads * hd, 11), k = randn(sh.kv_len * sh.kv_heads * hd, 12),
             v = randn(sh.kv_len * sh.kv_heads * hd, 13);
        std::vector<float> out1(q.size()), out2(q.size()), ref(q.size()), lse1(sh.heads * sh.seq),
            lse2(sh.heads * sh.seq), rlse(sh.heads * sh.seq);
        attention::tiled_forward(one, d, spec, q.data(), k.data(), v.data(), out1.data(), lse1.data(), sh.tiles);
        attention::tiled_forward(two, d, spec, q.data(), k.data(), v.data(), out2.data(), lse2.data(), sh.tiles);
        attention::reference_forward(two, d, spec, q.data(), k.data(), v.data(), ref.data(), rlse.data());
        EXPECT_LT(rel_err(out1, ref), 1e-5);
        EXPECT_LT(rel_err(lse1, rlse), 1e-5);
        EXPECT_EQ(out1, out2);
        EXPECT_EQ(lse1, lse2);
      }
}

}  // namespace
}  // namespace longctx

namespace longctx {
namespace {

// TileSizes::row_invariant: a row's output keeps its bits whatever call computes it: the whole
// sequence in one call, chunks starting anywhere (as a prompt is cut, or continues a prefix
// another sequence computed), or one position at a time (decoding). Keys from a cache (fp32 or
// fp16): kv_len = the end of the call's rows.
TEST(TiledAttention, RowInvariantRowsKeepTheirBitsInAnyCall) {
  ThreadPool pool(2);
  const int64_t T = 600;  // three key tiles: the split rule of decoding applies
  struct Shape {
    int heads, kv_heads, hd;
  };
  for (const Shape sh : {Shape{9, 3, 64}, Shape{4, 1, 32}, Shape{2, 2, 64}}) {
    for (const char* ps : {"causal", "window:70", "bigbird:16,2,1,2"}) {
      for (int variant = 0; variant < 3; ++variant) {
        const bool alibi = variant == 1, half = variant == 2;
        SCOPED_TRACE(std::string(ps) + " heads " + std::to_string(sh.heads) + "/" + std::to_string(sh.kv_heads) +
                     (alibi ? " alibi" : "") + (half ? " fp16 K/V" : ""));
        const auto pat = *attention::parse_pattern(ps);
        const std::vector<float> slopes = position::alibi_slopes(sh.heads);
        const int64_t qd = int64_t(sh.heads) * sh.hd, kvd = int64_t(sh.kv_heads) * sh.hd;
        const auto q = randn(T * qd, 11), k = randn(T * kvd, 12), v = randn(T * kvd, 13);
        std::vector<uint16_t> k16(k.size()), v16(v.size());
        quant::fp32_to_fp16_row(k.data(), k16.data(), static_cast<int64_t>(k.size()));
        quant::fp32_to_fp16_row(v.data(), v16.data(), static_cast<int64_t>(v.size()));
        const attention::KvView kview = half ? attention::KvView{k16.data(), 1} : attention::KvView{k.data(), 0};
        const attention::KvView vview = half ? attention::KvView{v16.data(), 1} : attention::KvView{v.data(), 0};
        attention::TileSizes ts;
        ts.row_invariant = true;
        // Rows [p0, p1) in one call.
        auto run = [&](int64_t p0, int64_t p1, float* out) {
          AttentionDims d = dims(sh.heads, sh.kv_heads, sh.hd, p1 - p0, p1, p0);
          d.kv_batch_stride = 0;
          const MaskView m(pat, p1, p0, p1);
          attention::tiled_forward_kv(pool, d, {&m, alibi ? slopes.data() : nullptr}, q.data() + p0 * qd, kview,
                                      vview, out + p0 * qd, nullptr, ts);
        };
        std::vector<float> whole(T * qd), cut(T * qd), single(T * qd);
        run(0, T, whole.data());
        // Chunks of uneven lengths at uneven starts (1, 2, 5, 13, 37, 101 rows ...).
        for (int64_t p0 = 0, n = 1; p0 < T; p0 += n, n = n * 3 - 1) run(p0, std::min(T, p0 + n), cut.data());
        for (int64_t p = 0; p < T; p += 7) run(p, p + 1, single.data());
        int64_t cut_diff = 0, single_diff = 0;
        for (int64_t p = 0; p < T; ++p) {
          cut_diff += std::memcmp(&whole[p * qd], &cut[p * qd], qd * sizeof(float)) != 0;
          if (p % 7 == 0) single_diff += std::memcmp(&whole[p * qd], &single[p * qd], qd * sizeof(float)) != 0;
        }
        EXPECT_EQ(cut_diff, 0) << "rows whose bits depend on the chunking";
        EXPECT_EQ(single_diff, 0) << "rows whose bits differ when decoded one at a time";
      }
    }
  }
}

}  // namespace
}  // namespace longctx
