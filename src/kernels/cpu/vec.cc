// Highway implementations of kernels/vec.h, compiled once per SIMD target and dispatched at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/vec.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

HWY_BEFORE_NAMESPACE();
namespace longctx::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;

float Dot(const float* a, const float* b, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d), s1 = hn::Zero(d);
  int64_t i = 0;
  for (; i + 2 * N <= n; i += 2 * N) {
    s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
    s1 = hn::MulAdd(hn::LoadU(d, a + i + N), hn::LoadU(d, b + i + N), s1);
  }
  for (; i + N <= n; i += N) s0 = hn::MulAdd(hn::LoadU(d, a + i), hn::LoadU(d, b + i), s0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(s0, s1)));
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

float Sum(const float* x, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  auto s0 = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) s0 = hn::Add(s0, hn::LoadU(d, x + i));
  float s = hn::GetLane(hn::SumOfLanes(d, s0));
  for (; i < n; ++i) s += x[i];
  return s;
}

float Max(const float* x, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  float m = -INFINITY;
  int64_t i = 0;
  if (n >= N) {
    auto v = hn::LoadU(d, x);
    for (i = N; i + N <= n; i += N) v = hn::Max(v, hn::LoadU(d, x + i));
    m = hn::GetLane(hn::MaxOfLanes(d, v));
  }
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::MulAdd(va, hn::LoadU(d, x + i), hn::LoadU(d, y + i)), d, y + i);
  for (; i < n; ++i) y[i] += a * x[i];
}

void Scale(float* x, float a, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Mul(va, hn::LoadU(d, x + i)), d, x + i);
  for (; i < n; ++i) x[i] *= a;
}

void Add(const float* a, const float* b, float* y, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::Add(hn::LoadU(d, a + i), hn::LoadU(d, b + i)), d, y + i);
  for (; i < n; ++i) y[i] = a[i] + b[i];
}

float ExpSum(float* x, float sub, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto vs = hn::Set(d, sub);
  const auto lo = hn::Set(d, -87.0f);
  auto acc = hn::Zero(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto t = hn::Sub(hn::LoadU(d, x + i), vs);
    auto e = hn::IfThenZeroElse(hn::Lt(t, lo), hn::Exp(d, hn::Max(t, lo)));
    hn::StoreU(e, d, x + i);
    acc = hn::Add(acc, e);
  }
  float s = hn::GetLane(hn::SumOfLanes(d, acc));
  for (; i < n; ++i) {
    float t = x[i] - sub;
    x[i] = t < -87.0f ? 0.0f : std::exp(t);
    s += x[i];
  }
  return s;
}

void AddRamp(float* x, float a, float b, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto va = hn::Set(d, a), vb = hn::Set(d, b), iota = hn::Iota(d, 0.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    const auto idx = hn::Add(iota, hn::Set(d, static_cast<float>(i)));  // exact below 2^24
    hn::StoreU(hn::Add(hn::LoadU(d, x + i), hn::MulAdd(idx, vb, va)), d, x + i);
  }
  for (; i < n; ++i) x[i] += a + b * static_cast<float>(i);
}

void SoftmaxBackward(const float* p, float* dp, float c, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto vc = hn::Set(d, c);
  int64_t i = 0;
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Mul(hn::LoadU(d, p + i), hn::Sub(hn::LoadU(d, dp + i), vc)), d, dp + i);
  for (; i < n; ++i) dp[i] = p[i] * (dp[i] - c);
}

constexpr float kGeluC = 0.7978845608028654f;  // sqrt(2/pi)
constexpr float kGeluA = 0.044715f;

void Gelu(const float* x, float* y, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto c = hn::Set(d, kGeluC), a = hn::Set(d, kGeluA), half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::LoadU(d, x + i);
    auto inner = hn::Mul(c, hn::MulAdd(hn::Mul(a, hn::Mul(v, v)), v, v));
    hn::StoreU(hn::Mul(hn::Mul(half, v), hn::Add(one, hn::Tanh(d, inner))), d, y + i);
  }
  for (; i < n; ++i) {
    float v = x[i];
    y[i] = 0.5f * v * (1.0f + std::tanh(kGeluC * (v + kGeluA * v * v * v)));
  }
}

void GeluBackward(const float* x, const float* dy, float* dx, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto c = hn::Set(d, kGeluC), a = hn::Set(d, kGeluA), a3 = hn::Set(d, 3.0f * kGeluA),
             half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::LoadU(d, x + i);
    auto v2 = hn::Mul(v, v);
    auto t = hn::Tanh(d, hn::Mul(c, hn::MulAdd(hn::Mul(a, v2), v, v)));
    // d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2)
    auto sech2 = hn::NegMulAdd(t, t, one);
    auto g = hn::MulAdd(hn::Mul(hn::Mul(half, v), sech2), hn::Mul(c, hn::MulAdd(a3, v2, one)),
                        hn::Mul(half, hn::Add(one, t)));
    hn::StoreU(hn::Mul(g, hn::LoadU(d, dy + i)), d, dx + i);
  }
  for (; i < n; ++i) {
    float v = x[i];
    float t = std::tanh(kGeluC * (v + kGeluA * v * v * v));
    float g = 0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * kGeluC * (1.0f + 3.0f * kGeluA * v * v);
    dx[i] = dy[i] * g;
  }
}

// erf(z) for z >= 0 times the sign of z, from the rational form 1 - (a1 t + ... + a5 t^5) e^(-z^2),
// t = 1 / (1 + p |z|) (Abramowitz & Stegun 7.1.26, absolute error <= 1.5e-7).
constexpr float kErfP = 0.3275911f, kErfA1 = 0.254829592f, kErfA2 = -0.284496736f, kErfA3 = 1.421413741f,
                kErfA4 = -1.453152027f, kErfA5 = 1.061405429f;
constexpr float kInvSqrt2 = 0.70710678118654752f, kInvSqrt2Pi = 0.3989422804014327f;

// e^y for y <= 0 (below -87: e^-87), for Erf: y = n ln 2 + r with n = round(y / ln 2) and r
// from a two-part ln 2 (Cody-Waite: r exact to ~2^-32), |r| <= ln 2 / 2; e^r by its Taylor
// polynomial to r^7 (relative error <= 0.347^8 / 8! ~ 5e-9); 2^n built in the exponent bits
// (n in [-126, 0]: a normal float).
template <class V>
HWY_INLINE V ExpNonPositive(D d, V y) {
  const hn::RebindToSigned<D> di;
  y = hn::Max(y, hn::Set(d, -87.0f));
  const auto n = hn::Round(hn::Mul(y, hn::Set(d, 1.44269504088896341f)));
  auto r = hn::NegMulAdd(n, hn::Set(d, 0.693145751953125f), y);  // ln 2's upper 16 bits: n * hi is exact
  r = hn::NegMulAdd(n, hn::Set(d, 1.42860682030941723e-6f), r);
  auto p = hn::Set(d, 1.0f / 5040);
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 720));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 120));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 24));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f / 6));
  p = hn::MulAdd(p, r, hn::Set(d, 0.5f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  p = hn::MulAdd(p, r, hn::Set(d, 1.0f));
  const auto scale = hn::BitCast(d, hn::ShiftLeft<23>(hn::Add(hn::ConvertTo(di, n), hn::Set(di, 127))));
  return hn::Mul(p, scale);
}

// ExpSum for x - sub <= 0 through ExpNonPositive (below -87: 0). The tail goes through a
// padded vector, so an element's result is the same at any index and row length.
float ExpSumNonPositive(float* x, float sub, int64_t n) {
  const D d;
  constexpr int64_t N = static_cast<int64_t>(hn::MaxLanes(D()));
  const auto vs = hn::Set(d, sub);
  const auto lo = hn::Set(d, -87.0f);
  auto acc = hn::Zero(d);
  auto vector = [&](float* p) {  // N elements at p, in place
    const auto t = hn::Sub(hn::LoadU(d, p), vs);
    const auto e = hn::IfThenZeroElse(hn::Lt(t, lo), ExpNonPositive(d, t));
    hn::StoreU(e, d, p);
    acc = hn::Add(acc, e);
  };
  int64_t i = 0;
  for (; i + N <= n; i += N) vector(x + i);
  if (i < n) {
    float buf[N];
    std::fill(buf, buf + N, -INFINITY);
    std::copy(x + i, x + n, buf);
    vector(buf);
    std::copy(buf, buf + (n - i), x + i);
  }
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

template <class V>
HWY_INLINE V Erf(D d, V z) {
  const auto az = hn::Abs(z);
  // t = 1 / q: the approximate reciprocal (14 bits) and one Newton step, to within ~2 ulp, about a
  // third of a division's cost.
  const auto q = hn::MulAdd(hn::Set(d, kErfP), az, hn::Set(d, 1.0f));
  auto t = hn::ApproximateReciprocal(q);
  t = hn::Mul(t, hn::NegMulAdd(q, t, hn::Set(d, 2.0f)));
  auto poly = hn::MulAdd(hn::Set(d, kErfA5), t, hn::Set(d, kErfA4));
  poly = hn::MulAdd(poly, t, hn::Set(d, kErfA3));
  poly = hn::MulAdd(poly, t, hn::Set(d, kErfA2));
  poly = hn::MulAdd(poly, t, hn::Set(d, kErfA1));
  poly = hn::Mul(poly, t);
  const auto e = ExpNonPositive(d, hn::Neg(hn::Mul(az, az)));
  const auto r = hn::NegMulAdd(poly, e, hn::Set(d, 1.0f));
  return hn::CopySign(r, z);
}

void GeluErf(const float* x, float* y, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto s = hn::Set(d, kInvSqrt2), half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::LoadU(d, x + i);
    hn::StoreU(hn::Mul(hn::Mul(half, v), hn::Add(one, Erf(d, hn::Mul(v, s)))), d, y + i);
  }
  for (; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + std::erf(x[i] * kInvSqrt2));
}

// d/dx x Phi(x) = Phi(x) + x phi(x).
void GeluErfBackward(const float* x, const float* dy, float* dx, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto s = hn::Set(d, kInvSqrt2), half = hn::Set(d, 0.5f), one = hn::Set(d, 1.0f),
             c = hn::Set(d, kInvSqrt2Pi), mhalf = hn::Set(d, -0.5f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto v = hn::LoadU(d, x + i);
    auto cdf = hn::Mul(half, hn::Add(one, Erf(d, hn::Mul(v, s))));
    auto pdf = hn::Mul(c, hn::Exp(d, hn::Mul(mhalf, hn::Mul(v, v))));
    hn::StoreU(hn::Mul(hn::MulAdd(v, pdf, cdf), hn::LoadU(d, dy + i)), d, dx + i);
  }
  for (; i < n; ++i) {
    const float v = x[i];
    dx[i] = dy[i] * (0.5f * (1.0f + std::erf(v * kInvSqrt2)) + v * kInvSqrt2Pi * std::exp(-0.5f * v * v));
  }
}

// sigmoid(x) = 1 / (1 + exp(-x)), with exp's argument clamped so it never overflows.
template <class V>
HWY_INLINE V Sigmoid(D d, V v) {
  auto e = hn::Exp(d, hn::Min(hn::Neg(v), hn::Set(d, 80.0f)));
  return hn::Div(hn::Set(d, 1.0f), hn::Add(hn::Set(d, 1.0f), e));
}
inline float sigmoid_scalar(float v) { return 1.0f / (1.0f + std::exp(std::fmin(-v, 80.0f))); }

void Swiglu(const float* g, const float* u, float* y, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto vg = hn::LoadU(d, g + i);
    hn::StoreU(hn::Mul(hn::Mul(vg, Sigmoid(d, vg)), hn::LoadU(d, u + i)), d, y + i);
  }
  for (; i < n; ++i) y[i] = g[i] * sigmoid_scalar(g[i]) * u[i];
}

void SwigluBackward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto one = hn::Set(d, 1.0f);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto vg = hn::LoadU(d, g + i), vu = hn::LoadU(d, u + i), vdy = hn::LoadU(d, dy + i);
    auto s = Sigmoid(d, vg);
    auto silu = hn::Mul(vg, s);
    // silu'(g) = s (1 + g (1 - s))
    auto dsilu = hn::Mul(s, hn::MulAdd(vg, hn::Sub(one, s), one));
    hn::StoreU(hn::Mul(hn::Mul(vdy, vu), dsilu), d, dg + i);
    hn::StoreU(hn::Mul(vdy, silu), d, du + i);
  }
  for (; i < n; ++i) {
    float s = sigmoid_scalar(g[i]);
    float silu = g[i] * s;
    dg[i] = dy[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
    du[i] = dy[i] * silu;
  }
}

void AdamW(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float wd, float bc1, float bc2) {
  const D d;
  const int64_t N = hn::Lanes(d);
  const auto b1 = hn::Set(d, beta1), b2 = hn::Set(d, beta2), ob1 = hn::Set(d, 1.0f - beta1),
             ob2 = hn::Set(d, 1.0f - beta2), ibc1 = hn::Set(d, 1.0f / bc1),
             ibc2 = hn::Set(d, 1.0f / bc2), veps = hn::Set(d, eps), vlr = hn::Set(d, lr),
             vwd = hn::Set(d, wd);
  int64_t i = 0;
  for (; i + N <= n; i += N) {
    auto vg = hn::LoadU(d, g + i);
    auto vm = hn::MulAdd(b1, hn::LoadU(d, m + i), hn::Mul(ob1, vg));
    auto vv = hn::MulAdd(b2, hn::LoadU(d, v + i), hn::Mul(ob2, hn::Mul(vg, vg)));
    hn::StoreU(vm, d, m + i);
    hn::StoreU(vv, d, v + i);
    auto upd = hn::Div(hn::Mul(vm, ibc1), hn::Add(hn::Sqrt(hn::Mul(vv, ibc2)), veps));
    auto vp = hn::LoadU(d, p + i);
    hn::StoreU(hn::NegMulAdd(vlr, hn::MulAdd(vwd, vp, upd), vp), d, p + i);
  }
  for (; i < n; ++i) {
    m[i] = beta1 * m[i] + (1.0f - beta1) * g[i];
    v[i] = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
    float upd = (m[i] / bc1) / (std::sqrt(v[i] / bc2) + eps);
    p[i] -= lr * (upd + wd * p[i]);
  }
}

}  // namespace longctx::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "kernels/vec.h"

namespace longctx::kernels {
HWY_EXPORT(Dot);
HWY_EXPORT(Sum);
HWY_EXPORT(Max);
HWY_EXPORT(Axpy);
HWY_EXPORT(Scale);
HWY_EXPORT(Add);
HWY_EXPORT(ExpSum);
HWY_EXPORT(ExpSumNonPositive);
HWY_EXPORT(AddRamp);
HWY_EXPORT(SoftmaxBackward);
HWY_EXPORT(Gelu);
HWY_EXPORT(GeluBackward);
HWY_EXPORT(GeluErf);
HWY_EXPORT(GeluErfBackward);
HWY_EXPORT(Swiglu);
HWY_EXPORT(SwigluBackward);
HWY_EXPORT(AdamW);

float vec_dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(Dot)(a, b, n); }
float vec_sum(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(Sum)(x, n); }
double vec_sum_sq(const float* x, int64_t n) {
  // Blocks of 1024 in fp32 SIMD, blocks summed in double: exact enough for a norm of millions.
  double s = 0;
  for (int64_t i = 0; i < n; i += 1024) {
    int64_t m = n - i < 1024 ? n - i : 1024;
    s += HWY_DYNAMIC_DISPATCH(Dot)(x + i, x + i, m);
  }
  return s;
}
float vec_max(const float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(Max)(x, n); }
void vec_axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Axpy)(a, x, y, n); }
void vec_scale(float* x, float a, int64_t n) { HWY_DYNAMIC_DISPATCH(Scale)(x, a, n); }
void vec_add(const float* a, const float* b, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Add)(a, b, y, n); }
float vec_exp_sum(float* x, float sub, int64_t n) { return HWY_DYNAMIC_DISPATCH(ExpSum)(x, sub, n); }
float vec_exp_sum_nonpositive(float* x, float sub, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(ExpSumNonPositive)(x, sub, n);
}
void vec_add_ramp(float* x, float a, float b, int64_t n) { HWY_DYNAMIC_DISPATCH(AddRamp)(x, a, b, n); }
void vec_softmax_backward(const float* p, float* dp, float c, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SoftmaxBackward)(p, dp, c, n);
}
void vec_gelu(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Gelu)(x, y, n); }
void vec_gelu_erf(const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(GeluErf)(x, y, n); }
void vec_gelu_erf_backward(const float* x, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluErfBackward)(x, dy, dx, n);
}
void vec_gelu_backward(const float* x, const float* dy, float* dx, int64_t n) {
  HWY_DYNAMIC_DISPATCH(GeluBackward)(x, dy, dx, n);
}
void vec_swiglu(const float* g, const float* u, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(Swiglu)(g, u, y, n); }
void vec_swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  HWY_DYNAMIC_DISPATCH(SwigluBackward)(g, u, dy, dg, du, n);
}
void vec_adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
               float eps, float wd, float bc1, float bc2) {
  HWY_DYNAMIC_DISPATCH(AdamW)(p, g, m, v, n, lr, beta1, beta2, eps, wd, bc1, bc2);
}
const char* simd_target_name() {
  // Highway orders targets so that the best one has the lowest bit.
  const int64_t t = hwy::SupportedTargets() & HWY_TARGETS;
  return hwy::TargetName(t & -t);
}
}  // namespace longctx::kernels
#endif
