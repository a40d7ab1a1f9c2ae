// The AVX-512 VNNI path of kernels/qmatmul.h (AVX-512 F/BW/DQ/VL + VNNI): integer products
// through vpdpbusd, whose first operand is unsigned: the weight (Q4 nibbles as they are, Q8_0 as
// q + 128), so x keeps its sign and the weight's offset is removed exactly through x's block
// sums (XRows::c). Each function carries its own target attribute (the build is baseline x86-64)
// and runs only after the CPUID check in cpu/qmatmul.cc. No lambdas below: a lambda does not
// inherit its enclosing function's target.
//
// All three types in groups of 16 blocks. Q4_0 / Q4_1: the 16 nibbles of 4 blocks fill one
//   64-byte operand (low nibbles, then a second operand for the high ones: no shuffles to put
//   nibbles in element order, x is stored to match). Q8_0: two blocks per operand, each block's
//   two 128-bit halves added, so a quad of 4 blocks again sits one block per 128-bit lane. The 4
//   quads' vectors are reduced by a 3-step transpose-add to one exact integer per block, and the
//   16 block scales are applied in one go:
//     acc += (float(isum_b) * dx_b) * dw_b  (+ s_b * m_b for Q4_1)       b = 16 lanes
//   then one summation tree (hsum16). A last partial group reads only its blocks of W, against x
//   padded with zero blocks. The AMX path (cpu/qmatmul_amx.cc) repeats these fp32 steps.
// The order of the fp32 operations on one output is the same for every tile shape, so it does not
// depend on how the driver tiled, nor on the thread count.
//
// gcc 12's intrinsic headers spell "undefined upper lanes" (the 128 -> 512-bit casts,
// _mm512_reduce_add_ps) as self-initialised variables, and -Wextra reports each inlined use as
// uninitialized (gcc PR105593, fixed in 12.3). The pragma must precede the header.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/cpu/qmatmul_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>

#define LONGCTX_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
// Full unrolling of the RW / RX loops keeps the accumulators in registers (gcc and clang).
#define LONGCTX_UNROLL _Pragma("GCC unroll 8")

namespace longctx::kernels::qmm {
namespace {

LONGCTX_AVX512 inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
LONGCTX_AVX512 inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

LONGCTX_AVX512 inline __m512i concat4(__m128i a, __m128i b, __m128i c, __m128i d) {
  const __m512i ab = _mm512_inserti32x4(_mm512_castsi128_si512(a), b, 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(ab, c, 2), d, 3);
}

LONGCTX_AVX512 inline float fp16_avx512(const uint8_t* p) {
  return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(load_u16(p))));
}

LONGCTX_AVX512 inline int32_t hsum_epi32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
  return _mm_cvtsi128_si32(s);
}

// ---- Q4_0 / Q4_1: groups of 16 blocks, per-block scaling -------------------------------------

// The sum of 16 lanes by one fixed tree (that of gcc's _mm512_reduce_add_ps, spelled out so that
// no compiler's choice enters): lane l + lane l + 8, then + 4, then + 2, then + 1. The AMX path
// (cpu/qmatmul_amx.cc) sums its partials by the same tree.
LONGCTX_AVX512 inline float hsum16(__m512 v) {
  const __m256 t8 = _mm256_add_ps(_mm512_extractf32x8_ps(v, 1), _mm512_castps512_ps256(v));
  const __m128 t4 = _mm_add_ps(_mm256_extractf128_ps(t8, 1), _mm256_castps256_ps128(t8));
  const __m128 t2 = _mm_add_ps(t4, _mm_movehl_ps(t4, t4));
  return _mm_cvtss_f32(_mm_add_ss(t2, _mm_movehdup_ps(t2)));
}

// The nibbles of the 4 blocks at p (only the first n when n < 4; the others are zero): lo = the
// low nibbles (elements 0..15) of each block in turn, hi = the high ones (16..31); 128-bit lane k
// belongs to block k.
template <uint32_t T>
LONGCTX_AVX512 inline void nibbles4(const uint8_t* p, int n, __m512i& lo, __m512i& hi) {
  constexpr int64_t BB = kBlockBytes<T>;
  constexpr int off = kQsOffset<T>;
  const __m128i z = _mm_setzero_si128();
  const __m512i q =
      n >= 4 ? concat4(load128(p + off), load128(p + BB + off), load128(p + 2 * BB + off), load128(p + 3 * BB + off))
             : concat4(load128(p + off), n > 1 ? load128(p + BB + off) : z, n > 2 ? load128(p + 2 * BB + off) : z, z);
  const __m512i mask = _mm512_set1_epi8(0x0F);
  lo = _mm512_and_si512(q, mask);
  hi = _mm512_and_si512(_mm512_srli_epi16(q, 4), mask);
}

// The first 4 bytes (d, and m for Q4_1) of the 16 blocks of a group at p (the first n; zero for
// the others), in the order the reduction below leaves the block sums: lane 4k + j holds block
// 4j + k.
template <uint32_t T>
LONGCTX_AVX512 inline __m512i group_heads(const uint8_t* p, int n) {
  constexpr int64_t BB = kBlockBytes<T>;
  __m128i h[4];
  LONGCTX_UNROLL for (int k = 0; k < 4; ++k) {
    if (n >= kGroup) {
      h[k] =
          _mm_setr_epi32(static_cast<int>(load_u32(p + k * BB)), static_cast<int>(load_u32(p + (4 + k) * BB)),
                         static_cast<int>(load_u32(p + (8 + k) * BB)), static_cast<int>(load_u32(p + (12 + k) * BB)));
    } else {  // blocks k, 4 + k, 8 + k, 12 + k where they exist
      h[k] = _mm_setr_epi32(k < n ? static_cast<int>(load_u32(p + k * BB)) : 0,
                            4 + k < n ? static_cast<int>(load_u32(p + (4 + k) * BB)) : 0,
                            8 + k < n ? static_cast<int>(load_u32(p + (8 + k) * BB)) : 0,
                            12 + k < n ? static_cast<int>(load_u32(p + (12 + k) * BB)) : 0);
    }
  }
  return concat4(h[0], h[1], h[2], h[3]);
}

// v_j (j = 0..3) holds in 128-bit lane k four partial sums of block 4j + k. Returns the block
// totals with block 4j + k in lane 4k + j (two 32-bit and one 64-bit transpose-add steps).
LONGCTX_AVX512 inline __m512i reduce_quads(__m512i v0, __m512i v1, __m512i v2, __m512i v3) {
  const __m512i e0 = _mm512_add_epi32(_mm512_unpacklo_epi32(v0, v1), _mm512_unpackhi_epi32(v0, v1));
  const __m512i e1 = _mm512_add_epi32(_mm512_unpacklo_epi32(v2, v3), _mm512_unpackhi_epi32(v2, v3));
  return _mm512_add_epi32(_mm512_unpacklo_epi64(e0, e1), _mm512_unpackhi_epi64(e0, e1));
}

// Q8_0, two blocks at p (n = 1: only the first; the second lane half is zero), as q + 128.
LONGCTX_AVX512 inline __m512i q8_pair(const uint8_t* p, int n) {
  constexpr int64_t BB = kBlockBytes<kQ8_0>;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80));
  const __m512i lo = _mm512_castsi256_si512(load256(p + 2));
  const __m512i w = n > 1 ? _mm512_inserti64x4(lo, load256(p + BB + 2), 1) : _mm512_zextsi256_si512(load256(p + 2));
  return n > 1 ? _mm512_xor_si512(w, flip) : _mm512_maskz_xor_epi64(0x0F, w, flip);
}

template <uint32_t T>
struct Avx512Grouped {
  template <int RW, int RX>
  LONGCTX_AVX512 static void tile(const Tile& t) {
    constexpr int64_t BB = kBlockBytes<T>;
    constexpr bool kQ41 = T == kQ4_1, kQ8 = T == kQ8_0;
    const int64_t nb = t.cols / kBlock;
    const int8_t* xq[RX];
    const float* xd[RX];
    const float* xs[RX];
    const int32_t* xc[RX];
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
      const XRowPtrs xr = t.xq->row(t.i0 + i);
      xq[i] = xr.qs;
      xd[i] = xr.d;
      xs[i] = xr.s;
      xc[i] = xr.c;
    }
    __m512 acc[RW][RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) LONGCTX_UNROLL for (int i = 0; i < RX; ++i) acc[r][i] =
        _mm512_setzero_ps();

    // The last group may be partial: only its n blocks of W are read; x is padded with zeros.
    for (int64_t g = 0; g * kGroup < nb; ++g) {
      const int n = static_cast<int>(std::min<int64_t>(kGroup, nb - g * kGroup)), nq = (n + 3) / 4;
      LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
        const uint8_t* p = t.w + r * t.row_bytes + g * kGroup * BB;
        // The same group of the next tile's row (prefetches past the matrix are harmless).
        LONGCTX_UNROLL for (int64_t o = 0; o < kGroup * BB; o += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(p + RW * t.row_bytes + o), _MM_HINT_T0);
        }
        // Q4: the nibbles of quad j (lo, hi); Q8_0: blocks 2m, 2m + 1 in wq[m]. Those past the
        // end stay unused.
        __m512i lo[4], hi[4], wq[8];
        if constexpr (kQ8) {
          LONGCTX_UNROLL for (int m = 0; m < 8; ++m) if (2 * m < n) wq[m] = q8_pair(p + 2 * m * BB, n - 2 * m);
        } else {
          LONGCTX_UNROLL for (int j = 0; j < 4; ++j) if (j < nq) nibbles4<T>(p + 4 * j * BB, n - 4 * j, lo[j], hi[j]);
        }
        const __m512i heads = group_heads<T>(p, n);
        const __m512 dw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(heads));
        __m512 mw;
        if constexpr (kQ41) mw = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(heads, 16)));
        LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
          const int8_t* xg = xq[i] + g * kGroup * kBlock;
          __m512i dp[4];  // quad j: 128-bit lane k holds four partial sums of block 4j + k
          LONGCTX_UNROLL for (int j = 0; j < 4; ++j) {
            dp[j] = _mm512_setzero_si512();
            if (j >= nq) continue;
            if constexpr (kQ8) {
              // Blocks 4j, 4j + 1 and 4j + 2, 4j + 3: each block's two 128-bit halves added.
              const __m512i e0 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[2 * j], _mm512_loadu_si512(xg + 128 * j));
              const __m512i e1 = 2 * (2 * j + 1) < n ? _mm512_dpbusd_epi32(_mm512_setzero_si512(), wq[2 * j + 1],
                                                                           _mm512_loadu_si512(xg + 128 * j + 64))
                                                     : _mm512_setzero_si512();
              dp[j] = _mm512_add_epi32(_mm512_shuffle_i32x4(e0, e1, 0x88), _mm512_shuffle_i32x4(e0, e1, 0xDD));
            } else {
              dp[j] = _mm512_dpbusd_epi32(dp[j], lo[j], _mm512_loadu_si512(xg + 128 * j));
              dp[j] = _mm512_dpbusd_epi32(dp[j], hi[j], _mm512_loadu_si512(xg + 128 * j + 64));
            }
          }
          __m512i isum = reduce_quads(dp[0], dp[1], dp[2], dp[3]);
          // Q4_0: -8 * sum q; Q8_0: -128 * sum q (the weights' offsets, exactly).
          if constexpr (!kQ41) isum = _mm512_add_epi32(isum, _mm512_loadu_si512(xc[i] + g * kGroup));
          const __m512 dx = _mm512_loadu_ps(xd[i] + g * kGroup);
          acc[r][i] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(isum), dx), dw, acc[r][i]);
          if constexpr (kQ41) acc[r][i] = _mm512_fmadd_ps(_mm512_loadu_ps(xs[i] + g * kGroup), mw, acc[r][i]);
        }
      }
    }
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
      t.y[i * t.ldy + r] = hsum16(acc[r][i]) + (t.bias ? t.bias[r] : 0.0f);
    }
  }
};

// ---- F16: fp32 x, 16 columns at a time; the last cols % 16 through masked loads --------------

struct Avx512F16 {
  template <int RW, int RX>
  LONGCTX_AVX512 static void tile(const Tile& t) {
    const int64_t cols = t.cols;
    const uint16_t* w[RW];
    const float* x[RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) w[r] = reinterpret_cast<const uint16_t*>(t.w + r * t.row_bytes);
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) x[i] = t.xf + (t.i0 + i) * cols;
    __m512 acc[RW][RX];
    LONGCTX_UNROLL for (int r = 0; r < RW; ++r) LONGCTX_UNROLL for (int i = 0; i < RX; ++i) acc[r][i] =
        _mm512_setzero_ps();
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = cols - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - j)) - 1);
      __m512 wv[RW];
      LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
        if (j % 32 == 0) _mm_prefetch(reinterpret_cast<const char*>(w[r] + j) + RW * t.row_bytes, _MM_HINT_T0);
        wv[r] = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, w[r] + j));
      }
      LONGCTX_UNROLL for (int i = 0; i < RX; ++i) {
        const __m512 xv = _mm512_maskz_loadu_ps(m, x[i] + j);
        LONGCTX_UNROLL for (int r = 0; r < RW; ++r) acc[r][i] = _mm512_fmadd_ps(wv[r], xv, acc[r][i]);
      }
    }
    LONGCTX_UNROLL for (int i = 0; i < RX; ++i) LONGCTX_UNROLL for (int r = 0; r < RW; ++r) {
      t.y[i * t.ldy + r] = _mm512_reduce_add_ps(acc[r][i]) + (t.bias ? t.bias[r] : 0.0f);
    }
  }
};

}  // namespace

// ---- activations ------------------------------------------------------------------------------

// Every step is exact or the one IEEE rounding the scalar quantizer also does (x * id, then its
// rounding to an integer, ties to even: vcvtps2dq under the default MXCSR mode). Rows get d, s
// and c (corr -128 for Q8_0, -8 for Q4) per block in the group order of XRows, q in element
// order (Q8_0) or the quad order (Q4), padded with zero blocks to a whole group; natural: the
// AMX path's rows, everything in element and block order.
LONGCTX_AVX512 void quantize_x_avx512(const float* x, int64_t in, uint32_t type, uint8_t* row, bool natural) {
  const XRowPtrs o(row, in);
  const int64_t nb = in / kBlock;
  const __m512i lo = _mm512_set1_epi32(-127);
  const __m256i ones8 = _mm256_set1_epi8(1);
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kBlock;
    const __m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
    const float d = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1))) / 127.0f;
    const __m512 id = _mm512_set1_ps(d != 0.0f ? 1.0f / d : 0.0f);
    // vpmovsdb saturates at 127 from above; the max keeps -128 out from below.
    const __m128i q0 = _mm512_cvtsepi32_epi8(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v0, id)), lo));
    const __m128i q1 = _mm512_cvtsepi32_epi8(_mm512_max_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v1, id)), lo));
    const __m256i lanes = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones8, _mm256_set_m128i(q1, q0));
    const int32_t sum = hsum_epi32(lanes);
    const int32_t corr = type == kQ8_0 ? -128 : -8;  // the VNNI tiles' weight offset (q + 128, nibble)
    if (natural) {  // the AMX path's rows: the scalar layout
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs + b * kBlock), q0);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o.qs + b * kBlock + 16), q1);
      o.d[b] = d;
      o.s[b] = d * static_cast<float>(sum);
      o.c[b] = corr * sum;
      continue;
    }
    // Block b = 16g + 4j + k: d, s, c to position 16g + 4k + j; q in element order (Q8_0) or
    // in quad j, slot k (Q4).
    const int64_t g = b / kGroup, j = (b % kGroup) / 4, k = b % 4, pos = g * kGroup + 4 * k + j;
    int8_t* q_lo = type == kQ8_0 ? o.qs + b * kBlock : o.qs + g * kGroup * kBlock + 128 * j + 16 * k;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q_lo), q0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q_lo + (type == kQ8_0 ? 16 : 64)), q1);
    o.d[pos] = d;
    o.s[pos] = d * static_cast<float>(sum);
    o.c[pos] = corr * sum;
  }
// Zero blocks up to a whole group (their weights are never read: they count as zero).
  for (int64_t b = nb; !natural && b < padded_blocks(in); ++b) {
    const int64_t g = b / kGroup, j = (b % kGroup) / 4, k = b % 4, pos = g * kGroup + 4 * k + j;
    int8_t* q_lo = type == kQ8_0 ? o.qs + b * kBlock : o.qs + g * kGroup * kBlock + 128 * j + 16 * k;
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q_lo), _mm_setzero_si128());
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q_lo + (type == kQ8_0 ? 16 : 64)), _mm_setzero_si128());
    o.d[pos] = 0.0f;
    o.s[pos] = 0.0f;
    o.c[pos] = 0;
  }
}

TileFn avx512_tile(uint32_t type, int rw, int rx) {
  switch (type) {
    case kQ8_0:
      return pick_tile<Avx512Grouped<kQ8_0>>(rw, rx);
    case kQ4_0:
      return pick_tile<Avx512Grouped<kQ4_0>>(rw, rx);
    case kQ4_1:
      return pick_tile<Avx512Grouped<kQ4_1>>(rw, rx);
    case kF16:
      return pick_tile<Avx512F16>(rw, rx);
    default:
      return nullptr;
  }
}

}  // namespace longctx::kernels::qmm

#else  // not x86-64: only the scalar path exists

namespace longctx::kernels::qmm {
void quantize_x_avx512(const float*, int64_t, uint32_t, uint8_t*) {}
TileFn avx512_tile(uint32_t, int, int) { return nullptr; }
}  // namespace longctx::kernels::qmm

#endif
