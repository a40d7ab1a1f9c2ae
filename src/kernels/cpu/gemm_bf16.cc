// kernels/gemm_bf16.h on AMX. A product runs in two steps, each split over the pool:
//   1. Packing. op(A) rounded to bf16 into Ap [Mp][Kp] (rows of K, Mp = M rounded up to 32, Kp =
//      K rounded up to 32, padding zero): a row of 32 elements of K is one 64-byte row of an A
//      tile. op(B) into Bp, strips of 16 columns of N, each [Kp / 2][16][2] (the VNNI pairs
//      tdpbf16ps reads: row k2 of a B tile holds elements 2 k2 and 2 k2 + 1 of K for each of the
//      16 columns), Np = N rounded up to 32; one B tile (32 of K) is 1 KB, contiguous. Transposed
//      operands go through 16 x 16 dword transposes in registers. A weight packed ahead
//      (bf16_pack_weight) skips B's packing; when it fits L2, A is packed block row by block row
//      by the thread that uses it, in the same pass as the products.
//   2. Blocks of 32 x 32 outputs: four C tiles (fp32) summed over Kp / 32 steps of two A tiles and
//      two B tiles (eight tile registers, four tdpbf16ps per step). Whole blocks under a plain
//      epilogue go straight between the tiles and C; the others are stored to a local buffer and
//      written as C = alpha * acc (+ beta * C) (+ bias) (+ residual) on the valid rows and columns.
// Conversions use vcvtneps2bf16 (AVX512-BF16: round to nearest even, NaN kept a NaN), which is
// quant::fp32_to_bf16's rule.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/gemm_bf16.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kernels/matmul.h"
#include "kernels/qmatmul.h"
#include "quant/fp16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LONGCTX_BF16_X86 1
#include <cpuid.h>
#include <immintrin.h>

#include "kernels/cpu/transpose16.h"
#else
#define LONGCTX_BF16_X86 0
#endif

namespace longctx::kernels {
namespace {

constexpr int64_t kKStep = 32;  // elements of K per tile product
constexpr int64_t kTile = 16;   // rows / columns of a C tile
constexpr int64_t kBlock = 32;  // rows / columns of a 2 x 2 tile block

int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

bool detect() {
#if LONGCTX_BF16_X86
  // The tile state's grant and AVX-512 are qmatmul's AMX check (AMX-TILE, AMX-INT8, AVX-512 with
  // VNNI, XCR0's tile bits, ARCH_REQ_XCOMP_PERM, LONGCTX_NO_AMX); on top of it AMX-BF16 (leaf 7
  // EDX bit 22) and AVX512-BF16 (leaf 7 subleaf 1 EAX bit 5) for the conversions.
  if (!qmatmul_path_supported(QPath::kAmx)) return false;
  unsigned a = 0, b = 0, c = 0, d = 0;
  __cpuid_count(7, 0, a, b, c, d);
  const bool amx_bf16 = (d >> 22) & 1;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512_bf16 = (a >> 5) & 1;
  return amx_bf16 && avx512_bf16;
#else
  return false;
#endif
}

// Staging buffers, grown as needed, 64-byte aligned. Shared (packed operands) buffers belong to
// the calling thread.
uint16_t* grow(std::vector<uint16_t>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n + 32) v.resize(static_cast<size_t>(n + 32));
  return reinterpret_cast<uint16_t*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
}

// C = alpha * acc (+ beta * C) (+ bias[column]) (+ residual), added in that order.
struct Epilogue {
  float alpha = 1.0f, beta = 0.0f;
  const float* bias = nullptr;      // [N]
  const float* residual = nullptr;  // [M, ldr]
  int64_t ldr = 0;
};

#if LONGCTX_BF16_X86
#define LONGCTX_AMX_BF16 \
  __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma")))

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// 16 floats at p (the first n of them; the rest read as zero) as 16 bf16.
LONGCTX_AMX_BF16 inline __m256i cvt16(const float* p, int64_t n) {
  const __mmask16 m = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << std::max<int64_t>(n, 0)) - 1);
  const __m512 v = _mm512_maskz_loadu_ps(m, p);
  return reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v));
}

// Two rows of 16 floats (the first n of each) as 16 dwords: dword j = (bf16 lo[j], bf16 hi[j]).
LONGCTX_AMX_BF16 inline __m512i pair16(const float* lo, const float* hi, int64_t n, bool lo_on, bool hi_on) {
  alignas(64) static const uint16_t kInterleave[32] = {0, 16, 1, 17, 2,  18, 3,  19, 4,  20, 5,  21, 6,  22, 7,  23,
                                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m256i a = lo_on && n > 0 ? cvt16(lo, n) : _mm256_setzero_si256();
  const __m256i b = hi_on && n > 0 ? cvt16(hi, n) : _mm256_setzero_si256();
  return _mm512_permutexvar_epi16(_mm512_load_si512(kInterleave), _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
}

// Rows [r0, r1) of Ap from A (not transposed: row r of op(A) is A + r * lda); row r goes to
// Ap + (r - out_row0) * Kp.
LONGCTX_AMX_BF16 void pack_rows(const float* A, int64_t lda, int64_t M, int64_t K, int64_t Kp, int64_t r0,
                                int64_t r1, uint16_t* Ap, int64_t out_row0 = 0) {
  for (int64_t r = r0; r < r1; ++r) {
    uint16_t* o = Ap + (r - out_row0) * Kp;
    if (r >= M) {
      std::memset(o, 0, static_cast<size_t>(Kp) * 2);
      continue;
    }
    const float* a = A + r * lda;
    for (int64_t k = 0; k < Kp; k += 16)
      _mm256_store_si256(reinterpret_cast<__m256i*>(o + k), cvt16(a + k, K - k));
  }
}

// Rows [r0, r1) (multiples of 16) of Ap from A transposed: op(A)[r][k] = A[k * lda + r]. Each 16
// rows x 32 of K: rows 2 k2 and 2 k2 + 1 of A (16 contiguous floats each) paired into 16 dwords
// (one per row r of op(A)), then a 16 x 16 dword transpose gives the 16 rows of Ap.
LONGCTX_AMX_BF16 void pack_rows_t(const float* A, int64_t lda, int64_t M, int64_t K, int64_t Kp, int64_t r0,
                                  int64_t r1, uint16_t* Ap) {
  __m512i v[16];
  // K outermost: rows of A are read front to back over [r0, r1) (prefetchers follow that; 16
  // floats from each of K rows, column block by column block, they do not).
  for (int64_t k0 = 0; k0 < Kp; k0 += kKStep) {
    for (int64_t r = r0; r < r1; r += kTile) {
      const int64_t nr = std::min<int64_t>(kTile, M - r);
      for (int64_t k2 = 0; k2 < kTile; ++k2) {
        const int64_t k = k0 + 2 * k2;
        v[k2] = pair16(A + k * lda + r, A + (k + 1) * lda + r, nr, k < K, k + 1 < K);
      }
      transpose16(v);
      for (int64_t i = 0; i < kTile; ++i) _mm512_store_si512(Ap + (r + i) * Kp + k0, v[i]);
    }
  }
}

// Strips [s0, s1) of Bp from B not transposed: op(B)[k][n] = B[k * ldb + n]. Row k2 of a strip:
// rows 2 k2 and 2 k2 + 1 of B, 16 columns each, interleaved.
LONGCTX_AMX_BF16 void pack_strips(const float* B, int64_t ldb, int64_t N, int64_t K, int64_t Kp, int64_t s0,
                                  int64_t s1, uint16_t* Bp) {
  // Pairs of rows outermost: B's rows are read front to back over the strips' columns.
  for (int64_t k2 = 0; k2 < Kp / 2; ++k2) {
    const int64_t k = 2 * k2;
    for (int64_t s = s0; s < s1; ++s) {
      const int64_t n0 = s * kTile;
      _mm512_store_si512(Bp + s * Kp * kTile + k2 * 2 * kTile,
                         pair16(B + k * ldb + n0, B + (k + 1) * ldb + n0, N - n0, k < K, k + 1 < K));
    }
  }
}

// Strips [s0, s1) of Bp from B transposed: op(B)[k][n] = B[n * ldb + k]. For each 32 of K, the
// 16 columns' 32 contiguous floats become 16 dwords (pairs of K) each; a 16 x 16 dword transpose
// gives the strip's 16 rows (one per pair of K).
LONGCTX_AMX_BF16 void pack_strips_t(const float* B, int64_t ldb, int64_t N, int64_t K, int64_t Kp, int64_t s0,
                                    int64_t s1, uint16_t* Bp) {
  __m512i v[16];
  for (int64_t s = s0; s < s1; ++s) {
    uint16_t* o = Bp + s * Kp * kTile;
    const int64_t n0 = s * kTile;
    for (int64_t k0 = 0; k0 < Kp; k0 += kKStep) {
      for (int64_t j = 0; j < kTile; ++j) {
        __m256i lo = _mm256_setzero_si256(), hi = _mm256_setzero_si256();
        if (n0 + j < N) {
          lo = cvt16(B + (n0 + j) * ldb + k0, K - k0);
          hi = cvt16(B + (n0 + j) * ldb + k0 + 16, K - k0 - 16);
        }
        v[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
      }
      transpose16(v);
      for (int64_t k2 = 0; k2 < kTile; ++k2) _mm512_store_si512(o + k0 * kTile + k2 * 2 * kTile, v[k2]);
    }
  }
}

#define TC00 0
#define TC01 1
#define TC10 2
#define TC11 3
#define TA0 4
#define TA1 5
#define TB0 6
#define TB1 7

// The 32 x 32 block of 32 packed rows of op(A) at a0 (row stride Kp) by block column bn of Bp,
// into c (row stride ldc floats): c = the product, with `accumulate` c + the product (the C tiles
// start from c's values), with `start` start[column] + the product (a bias: the C tiles start
// from it on every row).
LONGCTX_AMX_BF16 inline void block_product(const uint16_t* a0, const uint16_t* Bp, int64_t Kp, int64_t bn, float* c,
                                           int64_t ldc, bool accumulate, const float* start = nullptr) {
  const uint16_t* a1 = a0 + kTile * Kp;
  const uint16_t* b0 = Bp + 2 * bn * Kp * kTile;
  const uint16_t* b1 = b0 + Kp * kTile;
  const int64_t astride = Kp * 2, cstride = ldc * 4;
  if (start) {  // every row of the C tiles starts as start[0 .. 32) (a stride-0 load)
    _tile_loadd(TC00, start, 0);
    _tile_loadd(TC01, start + kTile, 0);
    _tile_loadd(TC10, start, 0);
    _tile_loadd(TC11, start + kTile, 0);
  } else if (accumulate) {
    _tile_loadd(TC00, c, cstride);
    _tile_loadd(TC01, c + kTile, cstride);
    _tile_loadd(TC10, c + kTile * ldc, cstride);
    _tile_loadd(TC11, c + kTile * ldc + kTile, cstride);
  } else {
    _tile_zero(TC00);
    _tile_zero(TC01);
    _tile_zero(TC10);
    _tile_zero(TC11);
  }
  for (int64_t k = 0; k < Kp; k += kKStep) {
    _tile_loadd(TA0, a0 + k, astride);
    _tile_loadd(TB0, b0 + k * kTile, 64);
    _tile_loadd(TA1, a1 + k, astride);
    _tile_loadd(TB1, b1 + k * kTile, 64);
    _tile_dpbf16ps(TC00, TA0, TB0);
    _tile_dpbf16ps(TC01, TA0, TB1);
    _tile_dpbf16ps(TC10, TA1, TB0);
    _tile_dpbf16ps(TC11, TA1, TB1);
  }
  _tile_stored(TC00, c, cstride);
  _tile_stored(TC01, c + kTile, cstride);
  _tile_stored(TC10, c + kTile * ldc, cstride);
  _tile_stored(TC11, c + kTile * ldc + kTile, cstride);
}

// The block at rows [i0, i0 + rows), columns [j0, j0 + cols) of C.
LONGCTX_AMX_BF16 void write_block(const float* acc, int64_t i0, int64_t j0, int64_t rows, int64_t cols,
                                  const Epilogue& ep, float* C, int64_t ldc) {
  const __m512 va = _mm512_set1_ps(ep.alpha), vb = _mm512_set1_ps(ep.beta);
  for (int64_t i = 0; i < rows; ++i) {
    float* c = C + (i0 + i) * ldc + j0;
    for (int64_t j = 0; j < cols; j += 16) {
      const __mmask16 m = cols - j >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (cols - j)) - 1);
      __m512 v = _mm512_mul_ps(va, _mm512_load_ps(acc + i * kBlock + j));
      if (ep.beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m, c + j), v);
      if (ep.bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, ep.bias + j0 + j));
      if (ep.residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, ep.residual + (i0 + i) * ep.ldr + j0 + j));
      _mm512_mask_storeu_ps(c + j, m, v);
    }
  }
}

// Whether block (bm, bn) goes straight from the tiles to C: a whole block under a plain
// epilogue (C = product, C + product, or bias + product).
inline bool direct(const Epilogue& ep, int64_t M, int64_t N, int64_t bm, int64_t bn) {
  const bool plain = ep.alpha == 1.0f && !ep.residual &&
                     (ep.bias ? ep.beta == 0.0f : (ep.beta == 0.0f || ep.beta == 1.0f));
  return plain && (bm + 1) * kBlock <= M && (bn + 1) * kBlock <= N;
}

// Block (bm, bn) of C over all of K: direct, or through acc and write_block (edges, scaled or
// biased epilogues).
LONGCTX_AMX_BF16 inline void block(const uint16_t* a0, const uint16_t* Bp, int64_t Kp, int64_t M, int64_t N,
                                   int64_t bm, int64_t bn, const Epilogue& ep, float* C, int64_t ldc, float* acc) {
  if (direct(ep, M, N, bm, bn)) {
    block_product(a0, Bp, Kp, bn, C + bm * kBlock * ldc + bn * kBlock, ldc, ep.beta == 1.0f,
                  ep.bias ? ep.bias + bn * kBlock : nullptr);
    return;
  }
  block_product(a0, Bp, Kp, bn, acc, kBlock, false);
  write_block(acc, bm * kBlock, bn * kBlock, std::min(kBlock, M - bm * kBlock), std::min(kBlock, N - bn * kBlock), ep,
              C, ldc);
}

LONGCTX_AMX_BF16 void configure_tiles() {
  TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = kTile;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
}

// Blocks of C in [m0, m1) x [n0, n1) (block indices) from packed Ap and Bp, on the calling thread.
// (Chunking K so a block row's A stays in L1 across the block columns was tried: no faster on the
// long-K products, whose time is the packing of their transposed operand.)
LONGCTX_AMX_BF16 void products(const uint16_t* Ap, const uint16_t* Bp, int64_t M, int64_t N, int64_t Kp,
                               const Epilogue& ep, float* C, int64_t ldc, int64_t m0, int64_t m1, int64_t n0,
                               int64_t n1) {
  configure_tiles();
  alignas(64) float acc[kBlock * kBlock];
  // Columns in groups that keep their B strips in L2 (~512 KB) while every block row passes.
  const int64_t group = std::max<int64_t>(1, (512 << 10) / (kBlock * Kp * 2));
  for (int64_t g0 = n0; g0 < n1; g0 += group) {
    const int64_t g1 = std::min(n1, g0 + group);
    for (int64_t bm = m0; bm < m1; ++bm) {
      for (int64_t bn = g0; bn < g1; ++bn) block(Ap + bm * kBlock * Kp, Bp, Kp, M, N, bm, bn, ep, C, ldc, acc);
    }
  }
  _tile_release();
}

// Tasks first, first + step, ... of C against a packed (small) Bp, task i being block row
// i / splits, column part i % splits (block columns split in `splits` even parts: several threads
// share a block row when there are fewer block rows than threads). A task packs its block row's
// 32 rows of A into the thread's own buffer a, then runs its block columns.
LONGCTX_AMX_BF16 void row_products(const float* A, int64_t lda, const uint16_t* Bp, int64_t M, int64_t N, int64_t K,
                                   int64_t Kp, const Epilogue& ep, float* C, int64_t ldc, int64_t splits,
                                   int64_t first, int64_t step, uint16_t* a) {
  configure_tiles();
  alignas(64) float acc[kBlock * kBlock];
  const int64_t bm_end = round_up(M, kBlock) / kBlock, bn_end = round_up(N, kBlock) / kBlock;
  for (int64_t task = first; task < bm_end * splits; task += step) {
    const int64_t bm = task / splits, part = task % splits;
    pack_rows(A, lda, M, K, Kp, bm * kBlock, (bm + 1) * kBlock, a, bm * kBlock);
    for (int64_t bn = part * bn_end / splits; bn < (part + 1) * bn_end / splits; ++bn) {
      block(a, Bp, Kp, M, N, bm, bn, ep, C, ldc, acc);
    }
  }
  _tile_release();
}
#endif

}  // namespace

bool gemm_bf16_supported() {
  static const bool ok = detect();
  return ok;
}

namespace {

// The product of packed operands (Bp given, or packed here from B when Bp is null).
void product(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const float* A,
             int64_t lda, const float* B, int64_t ldb, const uint16_t* Bp_given, const Epilogue& ep, float* C,
             int64_t ldc) {
  CHECK_MSG(gemm_bf16_supported(), "gemm_bf16 needs AMX-BF16 (gemm_bf16_supported())");
  if (M <= 0 || N <= 0) return;
#if LONGCTX_BF16_X86
  const int64_t Kp = round_up(std::max<int64_t>(K, 1), kKStep);
  const int64_t Mp = round_up(M, kBlock), Np = round_up(N, kBlock);
  const int64_t bm = Mp / kBlock, bn = Np / kBlock;
  if (Bp_given && !trans_a && Np * Kp * 2 <= (3 << 19)) {
    // A weight packed ahead that stays in L2: one pass, each task a block row, its rows of A
    // packed by the thread that uses them (no second parallel section, A's block stays in L1).
    const int64_t splits = bm < pool.threads() ? std::min<int64_t>(bn, pool.threads() / bm) : 1;
    const int64_t T = std::min<int64_t>(pool.threads(), bm * splits);
    pool.parallel_range(T, [&](int64_t, int64_t, int t) {
      thread_local std::vector<uint16_t> abuf;
      // Tasks dealt in a fixed interleave (thread t takes t, t + T, ...): even shares without a
      // shared counter; each output's arithmetic does not depend on who computes it.
      row_products(A, lda, Bp_given, M, N, K, Kp, ep, C, ldc, splits, t, T, grow(abuf, kBlock * Kp));
    });
    return;
  }
  thread_local std::vector<uint16_t> abuf, bbuf;
  uint16_t* Ap = grow(abuf, Mp * Kp);
  uint16_t* Bw = Bp_given ? nullptr : grow(bbuf, Np * Kp);
  const int64_t tiles_m = Mp / kTile, strips = Bp_given ? 0 : Np / kTile;
  // Tasks [0, tiles_m): 16 rows of Ap each; then one strip of Bp each (the transposed strips cost
  // about four times a row tile: weighted so the threads finish together).
  const int64_t wb = trans_b ? 4 : 1;
  pool.parallel_range(tiles_m + wb * strips, [&](int64_t b, int64_t e, int) {
    const int64_t am0 = std::min(b, tiles_m), am1 = std::min(e, tiles_m);
    if (am1 > am0) {
      if (trans_a)
        pack_rows_t(A, lda, M, K, Kp, am0 * kTile, am1 * kTile, Ap);
      else
        pack_rows(A, lda, M, K, Kp, am0 * kTile, am1 * kTile, Ap);
    }
    const int64_t s0 = (std::max(b, tiles_m) - tiles_m + wb - 1) / wb, s1 = (std::max(e, tiles_m) - tiles_m + wb - 1) / wb;
    if (s1 > s0) {
      if (trans_b)
        pack_strips_t(B, ldb, N, K, Kp, s0, s1, Bw);
      else
        pack_strips(B, ldb, N, K, Kp, s0, s1, Bw);
    }
  });
  const uint16_t* Bp = Bp_given ? Bp_given : Bw;
  if (bn >= bm) {
    pool.parallel_range(bn, [&](int64_t b, int64_t e, int) { products(Ap, Bp, M, N, Kp, ep, C, ldc, 0, bm, b, e); });
  } else {
    pool.parallel_range(bm, [&](int64_t b, int64_t e, int) { products(Ap, Bp, M, N, Kp, ep, C, ldc, b, e, 0, bn); });
  }
#else
  (void)trans_a, (void)trans_b, (void)K, (void)A, (void)lda, (void)B, (void)ldb, (void)Bp_given, (void)ep, (void)C,
      (void)ldc;
#endif
}

Epilogue scaled(float alpha, float beta) {
  Epilogue ep;
  ep.alpha = alpha;
  ep.beta = beta;
  return ep;
}

}  // namespace

void gemm_bf16(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  product(pool, trans_a, trans_b, M, N, K, A, lda, B, ldb, nullptr, scaled(alpha, beta), C, ldc);
}

void gemm_bf16_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  CHECK_MSG(gemm_bf16_supported(), "gemm_bf16 needs AMX-BF16 (gemm_bf16_supported())");
  if (M <= 0 || N <= 0) return;
#if LONGCTX_BF16_X86
  const int64_t Kp = round_up(std::max<int64_t>(K, 1), kKStep);
  const int64_t Mp = round_up(M, kBlock), Np = round_up(N, kBlock);
  thread_local std::vector<uint16_t> abuf, bbuf;
  uint16_t* Ap = grow(abuf, Mp * Kp);
  uint16_t* Bp = grow(bbuf, Np * Kp);
  if (trans_a)
    pack_rows_t(A, lda, M, K, Kp, 0, Mp, Ap);
  else
    pack_rows(A, lda, M, K, Kp, 0, Mp, Ap);
  if (trans_b)
    pack_strips_t(B, ldb, N, K, Kp, 0, Np / kTile, Bp);
  else
    pack_strips(B, ldb, N, K, Kp, 0, Np / kTile, Bp);
  products(Ap, Bp, M, N, Kp, scaled(alpha, beta), C, ldc, 0, Mp / kBlock, 0, Np / kBlock);
#else
  (void)trans_a, (void)trans_b, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C,
      (void)ldc;
#endif
}

int64_t bf16_packed_weight_elems(int64_t n, int64_t k) {
  return round_up(std::max<int64_t>(n, 1), kBlock) * round_up(std::max<int64_t>(k, 1), kKStep);
}

void bf16_pack_weight(ThreadPool& pool, const float* w, int64_t n, int64_t k, uint16_t* out) {
  CHECK_MSG(gemm_bf16_supported(), "bf16_pack_weight needs AMX-BF16 (gemm_bf16_supported())");
#if LONGCTX_BF16_X86
  const int64_t Kp = round_up(std::max<int64_t>(k, 1), kKStep), strips = round_up(std::max<int64_t>(n, 1), kBlock) / kTile;
  pool.parallel_range(strips, [&](int64_t s0, int64_t s1, int) { pack_strips_t(w, k, n, k, Kp, s0, s1, out); });
#else
  (void)pool, (void)w, (void)n, (void)k, (void)out;
#endif
}

void gemm_bf16_packed(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const uint16_t* w_packed, float beta, float* C, int64_t ldc) {
  product(pool, false, true, M, N, K, A, lda, nullptr, 0, w_packed, scaled(alpha, beta), C, ldc);
}

const uint16_t* Bf16WeightCache::get(ThreadPool& pool, const float* w, int64_t n, int64_t k) {
  std::lock_guard<std::mutex> lock(mu_);
  auto& slot = packed_[Key{w, n, k}];
  if (slot.empty()) {
    const int64_t elems = bf16_packed_weight_elems(n, k);
    bf16_pack_weight(pool, w, n, k, grow(slot, elems));
    bytes_ += elems * 2;
  }
  return grow(slot, 0);
}

int64_t Bf16WeightCache::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}

void gemm_bf16_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  auto r = [](float v) { return quant::bf16_to_fp32(quant::fp32_to_bf16(v)); };
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
        const float b = trans_b ? B[j * ldb + k] : B[k * ldb + j];
        s += static_cast<double>(r(a)) * static_cast<double>(r(b));
      }
      float& c = C[i * ldc + j];
      c = alpha * static_cast<float>(s) + (beta != 0.0f ? beta * c : 0.0f);
    }
  }
}

void linear_forward_bf16(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w, const float* b,
                         int64_t out, float* y, const uint16_t* w_packed) {
  Epilogue ep;
  ep.bias = b;
  product(pool, false, true, rows, out, in, x, in, w, in, w_packed, ep, y, out);
}

void linear_forward_residual_bf16(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                                  const float* b, int64_t out, const float* residual, float* y,
                                  const uint16_t* w_packed) {
  // y may alias residual: each element reads its residual just before writing it.
  Epilogue ep;
  ep.bias = b;
  ep.residual = residual;
  ep.ldr = out;
  product(pool, false, true, rows, out, in, x, in, w, in, w_packed, ep, y, out);
}

void linear_backward_bf16(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t in,
                          const float* w, int64_t out, float* dx, bool accumulate_dx, float* dw, float* db) {
  if (dx) gemm_bf16(pool, false, false, rows, in, out, 1.0f, dy, out, w, in, accumulate_dx ? 1.0f : 0.0f, dx, in);
  if (dw) gemm_bf16(pool, true, false, out, in, rows, 1.0f, dy, out, x, in, 1.0f, dw, in);
  if (db) linear_backward(pool, x, dy, rows, in, w, out, nullptr, false, nullptr, db);
}

}  // namespace longctx::kernels
