// RoPE and its frequency scalings (linear / NTK-aware / YaRN) against rotations written out here in
// double precision, the inverse path against the transpose, and the scaling spec strings.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "position/rope.h"

namespace longctx::position {
namespace {

constexpr double kPi = 3.14159265358979323846;

std::vector<float> randv(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal());
  return v;
}

// Unscaled frequency of pair i, straight from Su et al.: theta^(-2i/d).
double base_freq(double theta, int head_dim, int i) { return std::pow(theta, -2.0 * i / head_dim); }

RopeScaling scaling_of(RopeScalingType type, float factor, int64_t original_ctx = 0, float attn_factor = 0.0f) {
  RopeScaling s;
  s.type = type;
  s.factor = factor;
  s.original_ctx = original_ctx;
  s.attn_factor = attn_factor;
  return s;
}

// Runs rope.apply on x: [batch, seq_len, heads * head_dim] rows padded to row_stride, and checks
// every pair against m * R(angle(p, i)) computed in double; the padding must stay untouched.
void expect_matches_reference(const Rope& rope, int64_t batch, int64_t seq_len, int heads, int64_t pos0,
                              const std::function<double(int64_t, int)>& angle, double m, bool inverse = false) {
  ThreadPool pool(2);
  const int d = rope.head_dim();
  const int64_t stride = heads * d + 3;
  std::vector<float> x = randv(batch * seq_len * stride, 11 + pos0);
  std::vector<float> y = x;
  rope.apply(pool, y.data(), batch, seq_len, heads, stride, pos0, inverse);
  const double sign = inverse ? -1.0 : 1.0;
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t t = 0; t < seq_len; ++t) {
      const int64_t p = pos0 + t;
      const int64_t row = (b * seq_len + t) * stride;
      for (int h = 0; h < heads; ++h) {
        for (int i = 0; i < d / 2; ++i) {
          const int64_t k = row + h * d + 2 * i;
          const double a = x[k], c = x[k + 1];
          const double th = sign * angle(p, i);
          const double r0 = m * (a * std::cos(th) - c * std::sin(th));
          const double r1 = m * (a * std::sin(th) + c * std::cos(th));
          const double tol = 1e-5 * m * std::hypot(a, c) + 1e-12;
          ASSERT_NEAR(y[k], r0, tol) << "pos " << p << " pair " << i << " head " << h;
          ASSERT_NEAR(y[k + 1], r1, tol) << "pos " << p << " pair " << i << " head " << h;
        }
      }
      for (int64_t j = heads * d; j < stride; ++j) ASSERT_EQ(y[row + j], x[row + j]) << "padding touched";
    }
  }
}

// rope applied to one head whose pairs are all (1, 0): the output pairs are (m cos a_i, m sin a_i).
std::vector<float> unit_pairs_at(const Rope& rope, int64_t pos) {
  ThreadPool pool(2);
  std::vector<float> v(rope.head_dim(), 0.0f);
  for (int i = 0; i < rope.head_dim() / 2; ++i) v[2 * i] = 1.0f;
  rope.apply(pool, v.data(), 1, 1, 1, rope.head_dim(), pos, false);
  return v;
}

TEST(Rope, UnscaledMatchesDoubleRotation) {
  const int d = 64;
  const double theta = 10000.0;
  const Rope rope(d, 10000.0f, 32768);
  auto angle = [&](int64_t p, int i) { return static_cast<double>(p) * base_freq(theta, d, i); };
  for (int64_t p : {0, 1, 7, 1000, 4095, 30000, 32767}) expect_matches_reference(rope, 1, 1, 1, p, angle, 1.0);
  // Several rows, sequences and heads, long positions, both directions.
  expect_matches_reference(rope, 2, 5, 3, 29990, angle, 1.0);
  expect_matches_reference(rope, 2, 5, 3, 29990, angle, 1.0, /*inverse=*/true);
  // A small head and another base.
  const Rope small(6, 500.0f, 40000);
  auto angle6 = [&](int64_t p, int i) { return static_cast<double>(p) * base_freq(500.0, 6, i); };
  expect_matches_reference(small, 3, 4, 2, 39990, angle6, 1.0);
}

TEST(Rope, ExplicitNoneIsTheOldConstructor) {
  const Rope a(32, 10000.0f, 5000);
  const Rope b(32, 10000.0f, 5000, RopeScaling{});
  const Rope c(32, 10000.0f, 5000, scaling_of(RopeScalingType::kNone, 7.0f));  // factor ignored for none
  for (int64_t p : {0, 3, 4999}) {
    EXPECT_EQ(unit_pairs_at(a, p), unit_pairs_at(b, p)) << p;
    EXPECT_EQ(unit_pairs_at(a, p), unit_pairs_at(c, p)) << p;
  }
  EXPECT_EQ(a.magnitude(), 1.0f);
  EXPECT_EQ(c.magnitude(), 1.0f);
}

TEST(Rope, LinearIsPositionInterpolation) {
  const int d = 64;
  const double theta = 10000.0;
  const Rope plain(d, 10000.0f, 32768);
  for (float f : {2.0f, 4.0f, 2.5f}) {
    const Rope lin(d, 10000.0f, 32768, scaling_of(RopeScalingType::kLinear, f));
    // Positions that are multiples of f: lin at p == plain at p / f.
    for (int64_t q : {0, 1, 3, 1000, 6000, 12000}) {
      const int64_t p = static_cast<int64_t>(std::llround(q * static_cast<double>(f)));
      if (p >= 32768 || static_cast<double>(p) != q * static_cast<double>(f)) continue;
      const auto got = unit_pairs_at(lin, p), want = unit_pairs_at(plain, q);
      for (int k = 0; k < d; ++k) ASSERT_NEAR(got[k], want[k], 1e-6) << "f " << f << " p " << p << " k " << k;
    }
    auto angle = [&](int64_t p, int i) { return (static_cast<double>(p) / f) * base_freq(theta, d, i); };
    expect_matches_reference(lin, 2, 4, 2, 30000, angle, 1.0);
    expect_matches_reference(lin, 1, 3, 1, 7, angle, 1.0);
    EXPECT_EQ(lin.magnitude(), 1.0f);
  }
}

TEST(Rope, NtkIsALargerBase) {
  // head_dim 4: d / (d - 2) = 2, so theta' = theta * F^2 is exact in float and the two ropes
  // must agree at every position; the slow pair turns F times slower, the fast pair not at all.
  {
    const float f = 4.0f;
    const Rope ntk(4, 10000.0f, 32768, scaling_of(RopeScalingType::kNtk, f));
    const Rope wide(4, 10000.0f * f * f, 32768);
    for (int64_t p : {0, 1, 100, 30000, 32767}) {
      EXPECT_EQ(unit_pairs_at(ntk, p), unit_pairs_at(wide, p)) << p;
      const auto v = unit_pairs_at(ntk, p);
      EXPECT_NEAR(v[0], std::cos(double(p)), 1e-6);                // pair 0: freq 1, unchanged
      EXPECT_NEAR(v[2], std::cos(double(p) / 100.0 / f), 1e-6);    // pair 1: 10000^-0.5 / F
      EXPECT_NEAR(v[3], std::sin(double(p) / 100.0 / f), 1e-6);
    }
  }
  // head_dim 64: against the double formula at long positions, and against a plain rope built
  // with theta' rounded to float where that rounding is still invisible.
  const int d = 64;
  const double f = 8.0;
  const double theta_ntk = 10000.0 * std::pow(f, double(d) / (d - 2));
  const Rope ntk(d, 10000.0f, 32768, scaling_of(RopeScalingType::kNtk, 8.0f));
  auto angle = [&](int64_t p, int i) { return static_cast<double>(p) * base_freq(theta_ntk, d, i); };
  expect_matches_reference(ntk, 2, 4, 3, 30000, angle, 1.0);
  expect_matches_reference(ntk, 1, 2, 1, 0, angle, 1.0);
  // Sanity of the definition: the slowest pair is exactly F times slower than unscaled.
  EXPECT_NEAR(base_freq(theta_ntk, d, d / 2 - 1) * f, base_freq(10000.0, d, d / 2 - 1), 1e-15);
  const Rope wide(d, static_cast<float>(theta_ntk), 32768);
  for (int64_t p : {1, 10, 500, 1000}) {
    const auto a = unit_pairs_at(ntk, p), b = unit_pairs_at(wide, p);
    for (int k = 0; k < d; ++k) ASSERT_NEAR(a[k], b[k], 1e-5) << "p " << p << " k " << k;
  }
  // Factor 1 changes nothing.
  const Rope ntk1(d, 10000.0f, 4096, scaling_of(RopeScalingType::kNtk, 1.0f));
  const Rope plain(d, 10000.0f, 4096);
  EXPECT_EQ(unit_pairs_at(ntk1, 4000), unit_pairs_at(plain, 4000));
}

TEST(Rope, YarnBlendsByWavelength) {
  const int d = 64;
  const double theta = 10000.0, f = 8.0, beta_fast = 32.0, beta_slow = 1.0;
  const int64_t orig = 4096;
  const Rope yarn(d, 10000.0f, orig * 8, scaling_of(RopeScalingType::kYarn, 8.0f, orig));
  const double m = 0.1 * std::log(f) + 1.0;  // YaRN's default magnitude
  EXPECT_NEAR(yarn.magnitude(), m, 1e-7);

  // Wavelength of pair i is 2 pi 10000^(i/32): pair 8 ~ 63 positions (65 turns over 4096, well
  // above beta_fast = 32), pair 25 ~ 8400 positions (0.49 turns, well below beta_slow = 1).
  auto wavelength = [&](int i) { return 2 * kPi / base_freq(theta, d, i); };
  ASSERT_LT(wavelength(8), orig / beta_fast / 1.5);
  ASSERT_GT(wavelength(25), orig / beta_slow * 1.5);
  // Pair 16: wavelength 200 pi ~ 628.3, 6.52 turns: gamma = (6.519 - 1) / 31 ~ 0.178, by hand.
  const double turns16 = orig / (200.0 * kPi);
  const double gamma16 = (turns16 - beta_slow) / (beta_fast - beta_slow);
  ASSERT_NEAR(gamma16, 0.17803, 1e-4);
  const double freq16 = 0.01;  // 10000^(-32/64)
  const double blended16 = (1 - gamma16) * freq16 / f + gamma16 * freq16;

  for (int64_t p : {1, 100, 4095, 20000, 32767}) {
    const auto v = unit_pairs_at(yarn, p);
    auto expect_angle = [&](int i, double a, const char* what) {
      EXPECT_NEAR(v[2 * i], m * std::cos(a), 2e-6) << what << " pair " << i << " pos " << p;
      EXPECT_NEAR(v[2 * i + 1], m * std::sin(a), 2e-6) << what << " pair " << i << " pos " << p;
    };
    for (int i : {0, 1, 5, 8}) expect_angle(i, p * base_freq(theta, d, i), "high-frequency (unscaled)");
    for (int i : {25, 28, 31}) expect_angle(i, p * base_freq(theta, d, i) / f, "low-frequency (/factor)");
    expect_angle(16, p * blended16, "middle (blend)");
    for (int i = 0; i < d / 2; ++i) EXPECT_NEAR(std::hypot(v[2 * i], v[2 * i + 1]), m, 1e-6) << "magnitude, pair " << i;
  }

  // Every pair, several rows and heads, against the full formula.
  auto angle = [&](int64_t p, int i) {
    const double fr = base_freq(theta, d, i);
    const double g = std::clamp((orig / (2 * kPi / fr) - beta_slow) / (beta_fast - beta_slow), 0.0, 1.0);
    return static_cast<double>(p) * ((1 - g) * fr / f + g * fr);
  };
  expect_matches_reference(yarn, 2, 4, 3, 30000, angle, m);

  // An explicit attn_factor replaces the default; other beta bounds move the ramp.
  const Rope yarn15(d, 10000.0f, 8192, scaling_of(RopeScalingType::kYarn, 8.0f, orig, 1.5f));
  EXPECT_EQ(yarn15.magnitude(), 1.5f);
  expect_matches_reference(yarn15, 1, 3, 2, 8000, angle, 1.5);
  RopeScaling narrow = scaling_of(RopeScalingType::kYarn, 4.0f, 2048);
  narrow.beta_fast = 16.0f;
  narrow.beta_slow = 2.0f;
  const Rope yarn_narrow(d, 10000.0f, 8192, narrow);
  auto angle_narrow = [&](int64_t p, int i) {
    const double fr = base_freq(theta, d, i);
    const double g = std::clamp((2048 / (2 * kPi / fr) - 2.0) / (16.0 - 2.0), 0.0, 1.0);
    return static_cast<double>(p) * ((1 - g) * fr / 4.0 + g * fr);
  };
  expect_matches_reference(yarn_narrow, 1, 3, 2, 8000, angle_narrow, 0.1 * std::log(4.0) + 1.0);
}

TEST(Rope, YarnNeedsOriginalContext) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(Rope(8, 10000.0f, 16, scaling_of(RopeScalingType::kYarn, 4.0f, 0)), "original_ctx");
  EXPECT_DEATH(Rope(8, 10000.0f, 16, scaling_of(RopeScalingType::kLinear, 0.5f)), "factor");
}

TEST(Rope, InverseIsTheTranspose) {
  ThreadPool pool(2);
  const int d = 32, heads = 3;
  const int64_t batch = 2, seq_len = 7, stride = heads * d, pos0 = 3000;
  const RopeScaling cases[] = {
      RopeScaling{},
      scaling_of(RopeScalingType::kLinear, 4.0f),
      scaling_of(RopeScalingType::kNtk, 4.0f),
      scaling_of(RopeScalingType::kYarn, 4.0f, 1024),
      scaling_of(RopeScalingType::kYarn, 16.0f, 512, 1.3f),
  };
  for (const RopeScaling& sc : cases) {
    const Rope rope(d, 10000.0f, 4096, sc);
    const int64_t n = batch * seq_len * stride;
    const std::vector<float> x = randv(n, 21), y = randv(n, 22);
    std::vector<float> rx = x, ry = y;
    rope.apply(pool, rx.data(), batch, seq_len, heads, stride, pos0, false);
    rope.apply(pool, ry.data(), batch, seq_len, heads, stride, pos0, true);
    double lhs = 0, rhs = 0, scale = 0;
    for (int64_t k = 0; k < n; ++k) {
      lhs += double(rx[k]) * y[k];
      rhs += double(x[k]) * ry[k];
      scale += std::fabs(double(rx[k]) * y[k]);
    }
    EXPECT_NEAR(lhs, rhs, 1e-5 * scale) << format_rope_scaling(sc);
    // R^T R = m^2 I: undoing the forward with the inverse path leaves x times the magnitude squared.
    const double m = sc.type == RopeScalingType::kYarn
                         ? (sc.attn_factor > 0 ? sc.attn_factor : 0.1 * std::log(double(sc.factor)) + 1.0)
                         : 1.0;
    rope.apply(pool, rx.data(), batch, seq_len, heads, stride, pos0, true);
    for (int64_t k = 0; k < n; ++k)
      ASSERT_NEAR(rx[k], m * m * x[k], 1e-5 * m * m * (1 + std::fabs(x[k]))) << format_rope_scaling(sc) << " " << k;
  }
}

TEST(RopeScalingSpec, Names) {
  EXPECT_STREQ(rope_scaling_name(RopeScalingType::kNone), "none");
  EXPECT_STREQ(rope_scaling_name(RopeScalingType::kLinear), "linear");
  EXPECT_STREQ(rope_scaling_name(RopeScalingType::kNtk), "ntk");
  EXPECT_STREQ(rope_scaling_name(RopeScalingType::kYarn), "yarn");
}

TEST(RopeScalingSpec, ParsesAndRoundTrips) {
  auto r = parse_rope_scaling("yarn:16,4096");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->type, RopeScalingType::kYarn);
  EXPECT_EQ(r->factor, 16.0f);
  EXPECT_EQ(r->original_ctx, 4096);
  EXPECT_EQ(r->beta_fast, 32.0f);
  EXPECT_EQ(r->beta_slow, 1.0f);
  EXPECT_EQ(r->attn_factor, 0.0f);
  r = parse_rope_scaling("yarn:4");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->original_ctx, 0);  // left for the caller to fill from the model's context
  r = parse_rope_scaling("linear:2.5");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, RopeScalingType::kLinear);
  EXPECT_EQ(r->factor, 2.5f);
  r = parse_rope_scaling("none");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->type, RopeScalingType::kNone);

  for (const char* s : {"none", "linear:4", "linear:2.5", "linear:1", "ntk:8", "ntk:1.125", "yarn:4",
                        "yarn:16,4096", "yarn:1.25,2048", "yarn:32,131072"}) {
    auto p = parse_rope_scaling(s);
    ASSERT_TRUE(p.ok()) << s << ": " << p.status().message();
    EXPECT_EQ(format_rope_scaling(*p), s);
  }
  // Struct -> text -> struct keeps awkward floats bit for bit.
  for (float f : {1.1f, 3.14159265f, 1.0f + 1e-7f, 123456.79f, 1e30f}) {
    for (RopeScalingType t : {RopeScalingType::kLinear, RopeScalingType::kNtk, RopeScalingType::kYarn}) {
      const RopeScaling sc = scaling_of(t, f, t == RopeScalingType::kYarn ? 8192 : 0);
      const std::string text = format_rope_scaling(sc);
      auto back = parse_rope_scaling(text);
      ASSERT_TRUE(back.ok()) << text << ": " << back.status().message();
      EXPECT_EQ(back->type, t) << text;
      EXPECT_EQ(back->factor, f) << text;
      EXPECT_EQ(back->original_ctx, sc.original_ctx) << text;
    }
  }
}

TEST(RopeScalingSpec, RejectsBadSpecsNamingThem) {
  for (const char* s : {"linear", "linear:0.5", "linear:abc", "yarn:4,-1", "foo:2", "ntk:nan", "", "linear:",
                        "ntk:inf", "ntk:-2", "ntk:1e50", "yarn:4,", "yarn:4,0", "yarn:4,abc", "yarn:4,4096,1",
                        "none:2", "linear:4,100", "linear: 4", "Linear:2", "linear:4x", "yarn:0x10"}) {
    auto r = parse_rope_scaling(s);
    ASSERT_FALSE(r.ok()) << "accepted '" << s << "'";
    const std::string msg = r.status().message();
    EXPECT_NE(msg.find(std::string("'") + s + "'"), std::string::npos) << "message does not name '" << s << "': " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  // The message also points at the part that is wrong.
  EXPECT_NE(parse_rope_scaling("linear:abc").status().message().find("factor 'abc'"), std::string::npos);
  EXPECT_NE(parse_rope_scaling("linear:0.5").status().message().find(">= 1"), std::string::npos);
  EXPECT_NE(parse_rope_scaling("yarn:4,-1").status().message().find("'-1'"), std::string::npos);
  EXPECT_NE(parse_rope_scaling("foo:2").status().message().find("unknown type 'foo'"), std::string::npos);
}

}  // namespace
}  // namespace longctx::position
