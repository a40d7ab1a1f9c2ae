// Vector primitives over contiguous fp32 arrays, SIMD with run-time dispatch (Highway picks
// SSE4 / AVX2 / AVX-512 on the running CPU). Single-threaded: callers split rows over the pool.
// tests/kernels/kernels_test.cc checks each against a scalar twin.
#pragma once
#include <cstdint>

namespace longctx::kernels {

float vec_dot(const float* a, const float* b, int64_t n);
float vec_sum(const float* x, int64_t n);
double vec_sum_sq(const float* x, int64_t n);  // accumulated in double (gradient norms)
float vec_max(const float* x, int64_t n);
void vec_axpy(float a, const float* x, float* y, int64_t n);  // y += a * x
void vec_scale(float* x, float a, int64_t n);                   // x *= a
void vec_add(const float* a, const float* b, float* y, int64_t n);  // y = a + b (may alias)
// x[i] = exp(x[i] - sub); returns the sum. Arguments below about -87 give 0.
float vec_exp_sum(float* x, float sub, int64_t n);
// The same for x[i] <= sub (a softmax row less its max or its log-sum-exp; differences a few ulps
// above 0, as recomputed scores can give, are fine too) through a shorter polynomial (relative
// error <= 1e-7 against exp, where vec_exp_sum's is ~1 ulp), the tail through the same vector
// code: each element's result does not depend on n or its index.
float vec_exp_sum_nonpositive(float* x, float sub, int64_t n);
// x[i] += a + b * i (ALiBi's distance term over a run of keys; i exact below 2^24).
void vec_add_ramp(float* x, float a, float b, int64_t n);
// dp[i] = p[i] * (dp[i] - c): the softmax backward with c = sum(p * dp).
void vec_softmax_backward(const float* p, float* dp, float c, int64_t n);
// GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2's).
void vec_gelu(const float* x, float* y, int64_t n);
void vec_gelu_backward(const float* x, const float* dy, float* dx, int64_t n);  // dx = dy * gelu'(x)
// GELU's exact form x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) (BERT), erf to within 2e-7.
void vec_gelu_erf(const float* x, float* y, int64_t n);
void vec_gelu_erf_backward(const float* x, const float* dy, float* dx, int64_t n);
// SwiGLU: y = silu(g) * u; backward writes dg, du.
void vec_swiglu(const float* g, const float* u, float* y, int64_t n);
void vec_swiglu_backward(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n);
// AdamW with decoupled weight decay (Loshchilov & Hutter): p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
// bc1 = 1 - beta1^t, bc2 = 1 - beta2^t.
void vec_adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
               float beta2, float eps, float wd, float bc1, float bc2);

// The SIMD target chosen on this CPU (for logs and benchmarks).
const char* simd_target_name();

}  // namespace longctx::kernels
