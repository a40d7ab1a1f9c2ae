// AVX-512 register-blocked fp32 products for attention tiles (see kernels/tile_gemm.h).
#include "kernels/tile_gemm.h"

// GCC 12's AVX-512 intrinsic headers warn about their own undefined-vector idiom (_mm512_undefined_*)
// once inlined into masked loads.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <algorithm>
#include <cstdlib>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"

namespace longctx::kernels {
namespace {

constexpr int kMr = 6;   // rows of C per micro-kernel
constexpr int kNv = 4;   // 16-float vectors of C per row: 64 columns

#define LONGCTX_AVX512 __attribute__((target("avx512f,fma")))

// C[MR, 16 NV] (the last vector masked by `last`) = alpha * sum_k a(i, k) B[k, :] + beta * C,
// a(i, k) = A[i * sam + k * sak].
template <int MR, int NV>
LONGCTX_AVX512 void micro(int64_t K, const float* A, int64_t sam, int64_t sak, const float* B, int64_t ldb,
                          float alpha, float beta, float* C, int64_t ldc, __mmask16 last) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* a[MR];
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) a[i] = A + i * sam;
  for (int64_t k = 0; k < K; ++k) {
    const float* b = B + k * ldb;
    __m512 bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j)
      bv[j] = j == NV - 1 ? _mm512_maskz_loadu_ps(last, b + 16 * j) : _mm512_loadu_ps(b + 16 * j);
    const int64_t ak = k * sak;
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i][ak]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
#pragma GCC unroll 8
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* c = C + i * ldc + 16 * j;
      const __mmask16 m = j == NV - 1 ? last : __mmask16(0xFFFF);
      __m512 v = _mm512_mul_ps(va, acc[i][j]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c), v);
      _mm512_mask_storeu_ps(c, m, v);
    }
  }
}

using Micro = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float, float, float*, int64_t,
                       __mmask16);

template <int MR>
constexpr Micro micro_for(int nv) {
  return nv == 1 ? micro<MR, 1> : nv == 2 ? micro<MR, 2> : nv == 3 ? micro<MR, 3> : micro<MR, 4>;
}

Micro micro_table(int mr, int nv) {
  switch (mr) {
    case 1: return micro_for<1>(nv);
    case 2: return micro_for<2>(nv);
    case 3: return micro_for<3>(nv);
    case 4: return micro_for<4>(nv);
    case 5: return micro_for<5>(nv);
    default: return micro_for<6>(nv);
  }
}

// C = alpha * a B + beta C, a(i, k) = A[i * sam + k * sak]. B [K, N] is in place (row stride
// ldb) or, with `blocked`, in column blocks of 64: block j is a contiguous [K, 64] panel at
// B + j * K * 64 (row stride 64).
void product(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t sam, int64_t sak, const float* B,
             int64_t ldb, bool blocked, float beta, float* C, int64_t ldc) {
  // Row blocks outermost: a block's A elements stay in L1 while B's panels stream from L2.
  for (int64_t m0 = 0; m0 < M; m0 += kMr) {
    const int mr = int(std::min<int64_t>(kMr, M - m0));
    for (int64_t n0 = 0; n0 < N; n0 += 16 * kNv) {
      const int64_t cols = std::min<int64_t>(16 * kNv, N - n0);
      const int nv = int((cols + 15) / 16);
      const int tail = int(cols - 16 * (nv - 1));
      const __mmask16 last = __mmask16((1u << tail) - 1);
      const float* b = blocked ? B + n0 * K : B + n0;
      const int64_t ld = blocked ? 16 * kNv : ldb;
      micro_table(mr, nv)(K, A + m0 * sam, sam, sak, b, ld, alpha, beta, C + m0 * ldc + n0, ldc, last);
    }
  }
}

// The [K, N] transpose of B [N, K] into column blocks of 64 (product's `blocked` layout: element
// (k, n) at p[(n / 64) * K * 64 + k * 64 + n % 64]), 16 x 16 blocks through the registers. A
// block's 64 rows then lie 256 bytes apart, not N floats, which kept L1 sets from colliding.
LONGCTX_AVX512 void transpose_into(const float* B, int64_t ldb, int64_t N, int64_t K, float* p) {
  __m512i r[16];
  for (int64_t n0 = 0; n0 < N; n0 += 16) {
    const int64_t nn = std::min<int64_t>(16, N - n0);
    const __mmask16 nmask = __mmask16((1u << nn) - 1);
    float* panel = p + (n0 / 64) * K * 64 + n0 % 64;
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
      const int64_t kk = std::min<int64_t>(16, K - k0);
      const __mmask16 kmask = __mmask16((1u << kk) - 1);
      for (int64_t i = 0; i < 16; ++i)
        r[i] = i < nn ? _mm512_maskz_loadu_epi32(kmask, B + (n0 + i) * ldb + k0) : _mm512_setzero_si512();
      transpose16(r);
      for (int64_t j = 0; j < kk; ++j) _mm512_mask_storeu_epi32(panel + (k0 + j) * 64, nmask, r[j]);
    }
  }
}

}  // namespace

bool tile_gemm_supported() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("fma") &&
                         std::getenv("LONGCTX_NO_TILE_KERNELS") == nullptr;
  return ok;
}

void tile_gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  const int64_t sam = trans_a ? 1 : lda, sak = trans_a ? lda : 1;
  if (!trans_b) return product(M, N, K, alpha, A, sam, sak, B, ldb, false, beta, C, ldc);
  // op(B) = B^T with B [N, K]: copied once into [K, 64] panels.
  thread_local std::vector<float> panel;
  const int64_t padded = (N + 63) / 64 * 64;
  if (panel.size() < size_t(K * padded)) panel.resize(size_t(K * padded));
  float* p = panel.data();
  transpose_into(B, ldb, N, K, p);
  product(M, N, K, alpha, A, sam, sak, p, 64, true, beta, C, ldc);
}

}  // namespace longctx::kernels
#else
#include <cstdio>

namespace longctx::kernels {
bool tile_gemm_supported() { return false; }
void tile_gemm_serial(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*, int64_t, float,
                      float*, int64_t) {
  std::fprintf(stderr, "tile_gemm_serial: not built for this CPU (check tile_gemm_supported())\n");
  std::abort();
}
}  // namespace longctx::kernels
#endif
