// The AVX2 path of kernels/qmatmul.h (AVX2 + FMA + F16C; CPUs without AVX-512 VNNI): one block
// per 256-bit register, products through vpmaddubsw / vpmaddwd. Each function carries its own
// target attribute (the build is baseline x86-64) and runs only after the CPUID check in
// cpu/qmatmul.cc. No lambdas below: a lambda does not inherit its enclosing function's target.
//
// A tile keeps RW x RX accumulators (one per output) with one int32 lane per 4 bytes of a block.
// After the integer products, lane l of block b holds an exact integer, scaled by d_x (x's block
// scale, pre-broadcast in XRows::dxv) and then by the weight's d:
//   acc += (float(dot_l) * dx_b) * dw_b         (+ sv_l * m_b for Q4_1)
// then one horizontal sum. The order of these operations is the same for every tile shape, so
// an output does not depend on how the driver tiled, nor on the thread count.
//
// gcc 12's intrinsic headers spell "undefined upper lanes" (the 128 -> 256-bit casts) as
// self-initialised variables, and -Wextra reports each inlined use as uninitialized (gcc
// PR105593, fixed in 12.3). The pragma must precede the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/cpu/qmatmul_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include "quant/fp16.h"

#define LONGCTX_AVX2 __attribute__((target("avx2,fma,f16c")))
// Full unrolling of the RW / RX loops keeps the accumulators in registers (gcc and clang).
#define LONGCTX_UNROLL _Pragma("GCC unroll 8")

namespace longctx::kernels::qmm {
namespace {

LONGCTX_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

LONGCTX_AVX2 inline float fp16_avx2(const uint8_t* p) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(p))));
}

// 32 nibbles of a Q4 block, unpacked in element order: bytes 0..15 the low nibbles (elements
// 0..15), bytes 16..31 the high ones (elements 16..31).
LONGCTX_AVX2 inline __m256i nibbles_avx2(const uint8_t* qs) {
  const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i v = _mm256_inserti128_si256(_mm256_castsi128_si256(q), _mm_srli_epi16(q, 4), 1);
  return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

template <uint32_t T>
struct Avx2Q {
  template <int RW, int RX>
  LONGCTX_AVX2 static void tile(const Tile& t) {
    constexpr int64_t BB = kBlockBytes<T>;
    const int64_t nb = t.cols / kBlock;
    const int8_t* xq[RX];
    const float* xd[RX];
    const int32_t* xc[RX];
    const float* xs[RX];
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
      const XRowPtrs xr = t.xq->row(t.i0 + i);
      xq[i] = xr.qs;
      xd[i] = xr.dxv;
      xc[i] = xr.ci;
      xs[i] = xr.sv;
    }
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[RW][RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) LONGCTX_UNROLL for (int i = 0; i < RX; ++i) acc[r][i] =
        _mm256_setzero_ps();

    for (int64_t b = 0; b < nb; ++b) {
      __m256i wu[RW], ws[RW];  // unsigned operand of vpmaddubsw; Q8_0: the signs to move onto x
      __m256 dw[RW], mw[RW];
      LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
        const uint8_t* p = t.w + r * t.row_bytes + b * BB;
        _mm_prefetch(reinterpret_cast<const char*>(p + RW * t.row_bytes), _MM_HINT_T0);  // the next tile's row
        if constexpr (T == kQ8_0) {
          ws[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2));
          wu[r] = _mm256_sign_epi8(ws[r], ws[r]);  // |w| (-128 gives 0x80 = 128 unsigned)
        } else {
          wu[r] = nibbles_avx2(p + kQsOffset<T>);
        }
        dw[r] = _mm256_set1_ps(fp16_avx2(p));
        if constexpr (T == kQ4_1) mw[r] = _mm256_set1_ps(fp16_avx2(p + 2));
      }
      LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
        const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq[i] + b * kBlock));
        const __m256 dx = _mm256_loadu_ps(xd[i] + b * kLanes);
        LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
          // |products| <= 128 * 127 * 2 (Q8_0) or 15 * 127 * 2 (Q4): no int16 saturation.
          __m256i p16;
          if constexpr (T == kQ8_0)
            p16 = _mm256_maddubs_epi16(wu[r], _mm256_sign_epi8(xv, ws[r]));
          else
            p16 = _mm256_maddubs_epi16(wu[r], xv);
          __m256i p32 = _mm256_madd_epi16(p16, ones);
          if constexpr (T == kQ4_0)
            p32 = _mm256_add_epi32(p32, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc[i] + b * kLanes)));
          acc[r][i] = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(p32), dx), dw[r], acc[r][i]);
          if constexpr (T == kQ4_1) acc[r][i] = _mm256_fmadd_ps(_mm256_loadu_ps(xs[i] + b * kLanes), mw[r], acc[r][i]);
        }
      }
    }
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
      t.y[i * t.ldy + r] = hsum_avx2(acc[r][i]) + (t.bias ? t.bias[r] : 0.0f);
    }
  }
};

// F16 weights against fp32 x, 8 columns at a time; the last cols % 8 in scalar code.
struct Avx2F16 {
  template <int RW, int RX>
  LONGCTX_AVX2 static void tile(const Tile& t) {
    const int64_t cols = t.cols;
    const uint16_t* w[RW];
    const float* x[RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) w[r] = reinterpret_cast<const uint16_t*>(t.w + r * t.row_bytes);
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) x[i] = t.xf + (t.i0 + i) * cols;
    __m256 acc[RW][RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) LONGCTX_UNROLL for (int i = 0; i < RX; ++i) acc[r][i] =
        _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= cols; j += 8) {
      __m256 wv[RW];
      LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
        if (j % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(w[r] + j) + RW * t.row_bytes, _MM_HINT_T0);
        wv[r] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r] + j)));
      }
      LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
        const __m256 xv = _mm256_loadu_ps(x[i] + j);
        LONGCTX_UNROLL for (int r = 0; r < RW; ++r) acc[r][i] = _mm256_fmadd_ps(wv[r], xv, acc[r][i]);
      }
    }
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
      float s = hsum_avx2(acc[r][i]);
      for (int64_t k = j; k < cols; ++k) s += quant::fp16_to_fp32(w[r][k]) * x[i][k];
      t.y[i * t.ldy + r] = s + (t.bias ? t.bias[r] : 0.0f);
    }
  }
};

}  // namespace

// Activation quantization: every step is exact or the one IEEE rounding the scalar code also does
// (x * id, then its rounding to an integer, ties to even: vcvtps2dq under the default MXCSR mode).
LONGCTX_AVX2 void quantize_x_avx2(const float* x, int64_t in, uint32_t type, uint8_t* row) {
  const XRowPtrs o(row, in);
  const int corr = type == kQ4_0 ? -8 : 0;  // Q8_0 uses the sign trick: no offset
  const bool q41 = type == kQ4_1;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  for (int64_t b = 0; b < in / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(xb + 8 * k);
    __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_and_ps(v[0], abs_mask), _mm256_and_ps(v[1], abs_mask)),
                             _mm256_max_ps(_mm256_and_ps(v[2], abs_mask), _mm256_and_ps(v[3], abs_mask)));
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float d = _mm_cvtss_f32(m4) / 127.0f;
    const __m256 id = _mm256_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[k], id)), lo), hi);
    // Packing works within 128-bit lanes; the permute puts the 8 groups of 4 back in order.
    const __m256i q16a = _mm256_packs_epi32(q[0], q[1]), q16b = _mm256_packs_epi32(q[2], q[3]);
    const __m256i q8 = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(q16a, q16b), order);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o.qs + b * kBlock), q8);
    int32_t lane[kLanes];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lane), _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, q8), ones16));
    int32_t sum = 0;
    for (int l = 0; l < kLanes; ++l) {
      sum += lane[l];
      o.dxv[b * kLanes + l] = d;
      if (corr != 0) o.ci[b * kLanes + l] = corr * lane[l];
      if (q41) o.sv[b * kLanes + l] = d * static_cast<float>(lane[l]);
    }
    o.d[b] = d;
    o.s[b] = d * static_cast<float>(sum);
  }
}

TileFn avx2_tile(uint32_t type, int rw, int rx) {
  switch (type) {
    case kQ8_0:
      return pick_tile<Avx2Q<kQ8_0>>(rw, rx);
    case kQ4_0:
      return pick_tile<Avx2Q<kQ4_0>>(rw, rx);
    case kQ4_1:
      return pick_tile<Avx2Q<kQ4_1>>(rw, rx);
    case kF16:
      return pick_tile<Avx2F16>(rw, rx);
    default:
      return nullptr;
  }
}

}  // namespace longctx::kernels::qmm

#else  // not x86-64: only the scalar path exists

namespace longctx::kernels::qmm {
void quantize_x_avx2(const float*, int64_t, uint32_t, uint8_t*) {}
TileFn avx2_tile(uint32_t, int, int) { return nullptr; }
}  // namespace longctx::kernels::qmm

#endif
