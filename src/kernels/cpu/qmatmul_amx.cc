// The AMX path of kernels/qmatmul.h for Q4_0 / Q4_1 / Q8_0 weights and 2 or more rows of x (AMX-TILE +
// AMX-INT8, with AVX-512 around it). The integer block products come from tdpbssd, 16 rows of W
// by up to 16 rows of x per instruction; everything in fp32 repeats, operation for operation, what
// the AVX-512 VNNI tile (cpu/qmatmul_avx512.cc) does for one row of x, so a row's result is
// bit-identical to the one-row (decode) product whatever its neighbours:
//   per output, 16 fp32 partial sums, one per block position in a group of 16 (block 16g + 4j + k
//   goes to partial 4k + j), each updated group after group by
//     p = fma(float(isum_b) * dx_b, dw_b, p)        (isum_b the block's exact integer sum)
//     p = fma(s_b, m_b, p)                          (Q4_1)
//   then summed by one fixed tree (hsum16 below), then + bias.
//
// Operands. A tile: M rows of quantized x (natural element order), one block (32 bytes) each.
// B tile: one block of 16 rows of W, 8 rows of 64 bytes: row g holds elements 4g..4g+3 of each of
// the 16 W rows (VNNI order; Q4 nibbles as bytes 0..15, Q8_0 q as it is: tdpbssd multiplies
// signed by signed, so no offset is needed, and Q4_0's -8 comes in as -8 * sum q). W's rows are
// taken in the order c = 4 * (r % 4) + r / 4 (what a 4x4 transpose of dwords leaves), and the
// outputs are put back in row order at the end. A strip of 16 rows of W is packed (pack_strip:
// transposed) once per call, or read from qmatmul_pack's copy, and serves every
// tile of x's rows; Q4's nibbles are spread to bytes per call (expand_strip).
// Costs per block and strip of 16 rows (measured on SmolLM2's shapes, 2-vCPU Sapphire Rapids
// VM): packing ~27 cycles (port 5: the inserts and transposes), the tile product and its store
// ~25, the fp32 steps 5 instructions per row of x. At 8 rows of x that is 2.2-2.9x the VNNI
// tiles' speed on SmolLM2's Q4_1 matrices (docs/BENCHMARKS.md).
//
// The OS must grant the tile state (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM)) before any tile
// instruction: cpu/qmatmul.cc asks once, and only reports the path supported when granted. Each
// call configures the tiles on the thread that uses them and releases them at the end.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "kernels/cpu/qmatmul_internal.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <utility>
#include <vector>

#define LONGCTX_AMX \
  __attribute__((target("amx-tile,amx-int8,avx512f,avx512bw,avx512dq,avx512vl,avx512vnni,avx2,fma,f16c")))
#define LONGCTX_UNROLL _Pragma("GCC unroll 16")

namespace longctx::kernels::qmm {
namespace {

constexpr int kStrip = static_cast<int>(kAmxStrip);  // rows of W per B tile
constexpr int kBBytes = 8 * 64;  // one B tile: 8 rows of 64 bytes
template <uint32_t T>
constexpr int64_t kPackedBlock = packed_block_bytes(T);  // one block of a packed strip
// Where a packed block's scales start: after the nibbles (Q4), after the B tile itself (Q8_0).
template <uint32_t T>
constexpr int64_t kScalesAt = T == kQ8_0 ? kBBytes : 256;

// Tile registers: C (int32 products), A (x), B (W). Macros: gcc's tile intrinsics paste the
// register number into the assembly text.
#define TILE_C0 0
#define TILE_C1 1
#define TILE_A0 2
#define TILE_A1 3
#define TILE_B0 4
#define TILE_B1 5

// Per-thread buffers of a call, 64-byte aligned, grown as needed.
class Scratch {
 public:
  int32_t* products(int64_t n) { return reinterpret_cast<int32_t*>(get(prod_, n * 4)); }
  float* x_scales(int64_t n) { return reinterpret_cast<float*>(get(xs_, n * 4)); }
  uint8_t* strip(int64_t bytes) { return get(strip_, bytes); }
  int64_t* order(int64_t n) { return reinterpret_cast<int64_t*>(get(order_, n * 8)); }

 private:
  static uint8_t* get(std::vector<uint8_t>& v, int64_t bytes) {
    if (static_cast<int64_t>(v.size()) < bytes + 64) v.resize(static_cast<size_t>(bytes + 64));
    return reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t{63});
  }
  std::vector<uint8_t> prod_, xs_, strip_, order_;
};

struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

// W row of column c of the products (and the reverse: the map is its own inverse).
constexpr int strip_row(int c) { return 4 * (c % 4) + c / 4; }

LONGCTX_AMX inline __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
LONGCTX_AMX inline __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

LONGCTX_AMX inline __m512i concat4(__m128i a, __m128i b, __m128i c, __m128i d) {
  const __m512i ab = _mm512_inserti32x4(_mm512_castsi128_si512(a), b, 1);
  return _mm512_inserti32x4(_mm512_inserti32x4(ab, c, 2), d, 3);
}

// q[a], 128-bit lane t: 4 dwords of row 4a + t. Stores 4 x 64 bytes at o: row g holds dword g of
// every row, in column order c (a 4x4 dword transpose per 128-bit lane: lane t, dword s of row g
// is dword g of W row 4s + t).
LONGCTX_AMX inline void transpose_store(const __m512i* q, uint8_t* o) {
  const __m512i u0 = _mm512_unpacklo_epi32(q[0], q[1]), u1 = _mm512_unpackhi_epi32(q[0], q[1]);
  const __m512i u2 = _mm512_unpacklo_epi32(q[2], q[3]), u3 = _mm512_unpackhi_epi32(q[2], q[3]);
  _mm512_storeu_si512(o, _mm512_unpacklo_epi64(u0, u2));
  _mm512_storeu_si512(o + 64, _mm512_unpackhi_epi64(u0, u2));
  _mm512_storeu_si512(o + 128, _mm512_unpacklo_epi64(u1, u3));
  _mm512_storeu_si512(o + 192, _mm512_unpackhi_epi64(u1, u3));
}

// The 16 bytes at pa + {0, 1, 2, 3} * row_bytes (rows r .. r + 3 of a strip; rs3 = 3 * rs), one
// row per 128-bit lane; rows from `rows` on read as zeros (kFull: all present).
template <bool kFull>
LONGCTX_AMX inline __m512i load_rows4(const uint8_t* pa, int64_t rs, int64_t rs3, int r, int rows) {
  if constexpr (kFull) return concat4(load128(pa), load128(pa + rs), load128(pa + 2 * rs), load128(pa + rs3));
  const __m128i z = _mm_setzero_si128();
  return concat4(r < rows ? load128(pa) : z, r + 1 < rows ? load128(pa + rs) : z, r + 2 < rows ? load128(pa + 2 * rs) : z,
                 r + 3 < rows ? load128(pa + rs3) : z);
}

// One strip of W (its first `rows` rows present; the others count as zero) in the packed form
// (kernels/qmatmul.h's qmatmul_pack): per block, Q4: 256 bytes v[0..3] (v[g] holds dword g, the
// nibble bytes 4g .. 4g + 3, of each of the 16 rows, in column order c), then the 16 scales d
// (fp16, as in the file), then (Q4_1) the 16 offsets m; Q8_0: the B tile itself (512 bytes, row
// g = elements 4g .. 4g + 3 of each row), then the 16 scales: the bytes of W, reordered.
// kFull: all 16 rows present.
template <uint32_t T, bool kFull>
LONGCTX_AMX void pack_strip(const uint8_t* w, int64_t row_bytes, int rows, int64_t nb, uint8_t* out) {
  constexpr int64_t BB = kBlockBytes<T>;
  constexpr int off = kQsOffset<T>;
  constexpr int64_t PB = kPackedBlock<T>;
  // Rows 4a .. 4a + 3 at p[a] + {0, 1, 2, 3} * row_bytes (four bases and two strides keep every
  // address in registers).
  const uint8_t* p[4];
  for (int a = 0; a < 4; ++a) p[a] = w + 4 * a * row_bytes;
  const int64_t rs = row_bytes, rs3 = 3 * row_bytes;
  const int64_t next_lines = (row_bytes + 63) / 64;
  for (int64_t b = 0; b < nb; ++b) {
    // The next strip's row b (16 streams are more than the hardware prefetchers follow).
    if (b < kStrip) {
      const uint8_t* nr = w + (kStrip + b) * row_bytes;
      for (int64_t l = 0; l < next_lines; ++l) _mm_prefetch(reinterpret_cast<const char*>(nr + 64 * l), _MM_HINT_T0);
    }
    __m512i q[4];  // q[a], 128-bit lane t: the 16 nibble bytes of row 4a + t
    __m512i h[4];  // h[a], lane t, dword 0: the scale(s) of row 4a + t (the first 4 bytes)
    LONGCTX_UNROLL for (int a = 0; a < 4; ++a) {
      const uint8_t* pa = p[a] + b * BB;
      q[a] = load_rows4<kFull>(pa + off, rs, rs3, 4 * a, rows);
      h[a] = load_rows4<kFull>(pa, rs, rs3, 4 * a, rows);
    }
    uint8_t* o = out + b * PB;
    transpose_store(q, o);
    if constexpr (T == kQ8_0) {  // bytes 16 .. 31 of each row: B tile rows 4 .. 7
      LONGCTX_UNROLL for (int a = 0; a < 4; ++a) q[a] = load_rows4<kFull>(p[a] + b * BB + off + 16, rs, rs3, 4 * a, rows);
      transpose_store(q, o + 256);
    }
    // Lane t: the scales of rows t, 4 + t, 8 + t, 12 + t: columns 4t .. 4t + 3.
    const __m512i heads = _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(h[0], h[1]), _mm512_unpacklo_epi32(h[2], h[3]));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + kScalesAt<T>), _mm512_cvtepi32_epi16(heads));
    if constexpr (T == kQ4_1) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + kScalesAt<T> + 32),
                          _mm512_cvtepi32_epi16(_mm512_srli_epi32(heads, 16)));
    }
  }
}

// pack_strip for a strip of `rows` <= 16 rows.
template <uint32_t T>
void pack_any_strip(const uint8_t* w, int64_t row_bytes, int rows, int64_t nb, uint8_t* out) {
  if (rows == kStrip)
    pack_strip<T, true>(w, row_bytes, rows, nb, out);
  else
    pack_strip<T, false>(w, row_bytes, rows, nb, out);
}

// A packed strip's nibbles as B tiles, bt [nb][8][64]: row g < 4 the low nibbles of v[g]
// (elements 4g .. 4g + 3), row 4 + g the high ones (elements 16 + 4g ..).
template <uint32_t T>
LONGCTX_AMX void expand_strip(const uint8_t* packed, int64_t nb, int8_t* bt) {
  constexpr int64_t PB = kPackedBlock<T>;
  const __m512i nib = _mm512_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* v = packed + b * PB;
    int8_t* o = bt + b * kBBytes;
    LONGCTX_UNROLL for (int g = 0; g < 4; ++g) {
      const __m512i x = _mm512_loadu_si512(v + 64 * g);
      _mm512_store_si512(o + g * 64, _mm512_and_si512(x, nib));
      _mm512_store_si512(o + (4 + g) * 64, _mm512_and_si512(_mm512_srli_epi16(x, 4), nib));
    }
  }
}

// The VNNI tile's final sum of 16 partials (the tree of gcc's _mm512_reduce_add_ps, spelled out
// so both paths share it): lanes l + 8, then + 4, then + 2, then + 1.
LONGCTX_AMX inline __m512 hsum16_columns(const __m512* p) {
  __m512 t8[8], t4[4], t2[2];
  LONGCTX_UNROLL for (int l = 0; l < 8; ++l) t8[l] = _mm512_add_ps(p[l + 8], p[l]);
  LONGCTX_UNROLL for (int l = 0; l < 4; ++l) t4[l] = _mm512_add_ps(t8[l + 4], t8[l]);
  LONGCTX_UNROLL for (int l = 0; l < 2; ++l) t2[l] = _mm512_add_ps(t4[l], t4[l + 2]);
  return _mm512_add_ps(t2[0], t2[1]);
}

// What strip_tile reads besides x and the strip: x's scales [block][2][M] (d, then s for Q4_1
// or c for Q4_0), the real blocks in the order the partial sums take them (16g + blk, g
// fastest), and 2 * kLag slots of products [M][16].
constexpr int64_t kLag = 4;  // blocks whose products are in flight (even: two tile sets)
struct TileInputs {
  const float* x_scales = nullptr;
  const int64_t* order = nullptr;
  int32_t* products = nullptr;
  const uint8_t* next = nullptr;  // to prefetch, block k at item k: the next packed strip
};

// The integer products of block b (M rows of x by the strip's 16 rows of W; its B tile at
// bt + b * bstride) into c [M][16], on tile set S.
template <int S>
LONGCTX_AMX inline void product(const uint8_t* xq, int64_t stride, const int8_t* bt, int64_t b, int32_t* c,
                                int64_t bstride) {
  if constexpr (S == 0) {
    _tile_loadd(TILE_A0, xq + b * kBlock, stride);
    _tile_loadd(TILE_B0, bt + b * bstride, 64);
    _tile_zero(TILE_C0);
    _tile_dpbssd(TILE_C0, TILE_A0, TILE_B0);
    _tile_stored(TILE_C0, c, 64);
  } else {
    _tile_loadd(TILE_A1, xq + b * kBlock, stride);
    _tile_loadd(TILE_B1, bt + b * bstride, 64);
    _tile_zero(TILE_C1);
    _tile_dpbssd(TILE_C1, TILE_A1, TILE_B1);
    _tile_stored(TILE_C1, c, 64);
  }
}

// M rows of x (from row i0) against one unpacked strip; y rows i0.. get the strip's `rows`
// columns. The tiles are configured for M rows.
template <uint32_t T, int M>
LONGCTX_AMX void strip_tile(const XRows& x, int64_t i0, int64_t nb, const int8_t* bt, const uint8_t* packed, int rows,
                            float* y, int64_t ldy, const float* bias, const TileInputs& in) {
  constexpr int64_t PB = kPackedBlock<T>;
  constexpr bool kQ41 = T == kQ4_1;
  // Q8_0's B tiles are the packed blocks themselves; Q4's were expanded into bt.
  constexpr int64_t BS = T == kQ8_0 ? PB : kBBytes;
  if constexpr (T == kQ8_0) bt = reinterpret_cast<const int8_t*>(packed);
  const int64_t groups = padded_blocks(x.in) / kGroup;
  int32_t* cb = in.products;
  const float* xsc = in.x_scales;
  const uint8_t* xq = x.base + i0 * x.stride;
  // The product of item k + kLag (in.order) is started before item k is scaled, so the tiles'
  // latency hides behind the fp32 work (two tile sets, 2 * kLag product slots).
  const int64_t* order = in.order;
  const int64_t items = nb;
  for (int64_t k = 0; k < std::min<int64_t>(kLag, items); ++k) {
    if (k % 2 == 0)
      product<0>(xq, x.stride, bt, order[k], cb + k * M * 16, BS);
    else
      product<1>(xq, x.stride, bt, order[k], cb + k * M * 16, BS);
  }
  int64_t k = 0;
  alignas(64) float part[M][16][16];  // [x row][partial][column]
  for (int blk = 0; blk < kGroup; ++blk) {
    const int lane = 4 * (blk % 4) + blk / 4;
    __m512 acc[M];
    LONGCTX_UNROLL for (int i = 0; i < M; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t bk = g * kGroup + blk;
      // Past the row's end the VNNI tile adds (0 * 0) * 0: no change, as a partial is never -0
      // (it starts at +0, and a sum is -0 only when both terms are).
      if (bk >= nb) break;
      if (k + kLag < items) {
        int32_t* slot = cb + (k + kLag) % (2 * kLag) * M * 16;
        if (k % 2 == 0)
          product<0>(xq, x.stride, bt, order[k + kLag], slot, BS);
        else
          product<1>(xq, x.stride, bt, order[k + kLag], slot, BS);
      }
      if (in.next) {
        LONGCTX_UNROLL for (int64_t l = 0; l < PB; l += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(in.next + k * PB + l), _MM_HINT_T0);
        }
      }
      const int32_t* c = cb + k % (2 * kLag) * M * 16;
      ++k;
      const float* dx = xsc + 2 * bk * M;
      const float* sx = dx + M;
      const uint8_t* scales = packed + bk * PB + kScalesAt<T>;  // fp16: exact in fp32
      const __m512 dwb = _mm512_cvtph_ps(load256(scales));
      __m512 mwb;
      if constexpr (kQ41) mwb = _mm512_cvtph_ps(load256(scales + 32));
      LONGCTX_UNROLL for (int i = 0; i < M; ++i) {
        __m512i isum = _mm512_load_si512(c + i * 16);
        if constexpr (T == kQ4_0) isum = _mm512_add_epi32(isum, _mm512_set1_epi32(std::bit_cast<int32_t>(sx[i])));
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(isum), _mm512_set1_ps(dx[i]));
        acc[i] = _mm512_fmadd_ps(f, dwb, acc[i]);
        if constexpr (kQ41) acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(sx[i]), mwb, acc[i]);
      }
    }
    LONGCTX_UNROLL for (int i = 0; i < M; ++i) _mm512_store_ps(part[i][lane], acc[i]);
  }
  alignas(64) int32_t perm[16];
  for (int r = 0; r < 16; ++r) perm[r] = strip_row(r);
  const __m512i to_rows = _mm512_load_si512(perm);
  const __mmask16 keep = static_cast<__mmask16>((1u << rows) - 1);
  const __m512 bv = bias ? _mm512_maskz_loadu_ps(keep, bias) : _mm512_setzero_ps();
  for (int i = 0; i < M; ++i) {
    __m512 p[16];
    LONGCTX_UNROLL for (int l = 0; l < 16; ++l) p[l] = _mm512_load_ps(part[i][l]);
    const __m512 sum = _mm512_permutexvar_ps(to_rows, hsum16_columns(p));
    _mm512_mask_storeu_ps(y + (i0 + i) * ldy, keep, _mm512_add_ps(sum, bv));
  }
}

template <uint32_t T>
using StripTileFn = void (*)(const XRows&, int64_t, int64_t, const int8_t*, const uint8_t*, int, float*, int64_t,
                             const float*, const TileInputs&);

template <uint32_t T, int... Ms>
constexpr auto make_tile_table(std::integer_sequence<int, Ms...>) {
  return std::array<StripTileFn<T>, sizeof...(Ms)>{&strip_tile<T, Ms + 1>...};
}

LONGCTX_AMX void configure(int m) {
  TileConfig cfg;
  for (int t : {TILE_C0, TILE_C1}) {
    cfg.rows[t] = static_cast<uint8_t>(m);
    cfg.colsb[t] = 64;
  }
  for (int t : {TILE_A0, TILE_A1}) {
    cfg.rows[t] = static_cast<uint8_t>(m);
    cfg.colsb[t] = kBlock;
  }
  for (int t : {TILE_B0, TILE_B1}) {
    cfg.rows[t] = 8;
    cfg.colsb[t] = 64;
  }
  // gcc 12 does not count the config's bytes as read by ldtilecfg and drops the stores above
  // without this barrier.
  __asm__ volatile("" : : "m"(cfg) : "memory");
  _tile_loadconfig(&cfg);
}

LONGCTX_AMX void release() { _tile_release(); }

template <uint32_t T>
void strips(const AmxCall& a, int64_t s0, int64_t s1) {
  static constexpr auto kTiles = make_tile_table<T>(std::make_integer_sequence<int, kStrip>{});
  const int64_t nb = a.w.cols / kBlock;
  thread_local Scratch sc;
  int8_t* bt = reinterpret_cast<int8_t*>(sc.strip(nb * (kBBytes + kPackedBlock<T>)));
  uint8_t* own = reinterpret_cast<uint8_t*>(bt + nb * kBBytes);  // a strip packed here (no a.w.packed)
  // x's scales per tile of 16 rows, and the block order: once per call on each thread.
  const int64_t xtiles = (a.n + kStrip - 1) / kStrip;
  float* xsc = sc.x_scales(xtiles * nb * 2 * kStrip);
  for (int64_t t = 0; t < xtiles; ++t) {
    const int m = static_cast<int>(std::min<int64_t>(kStrip, a.n - t * kStrip));
    float* o = xsc + t * nb * 2 * kStrip;
    for (int i = 0; i < m; ++i) {
      const XRowPtrs r = a.x->row(t * kStrip + i);
      for (int64_t b = 0; b < nb; ++b) {
        o[2 * b * m + i] = r.d[b];
        if constexpr (T == kQ4_1)
          o[(2 * b + 1) * m + i] = r.s[b];
        else if constexpr (T == kQ4_0)
          std::memcpy(&o[(2 * b + 1) * m + i], &r.c[b], 4);  // Q8_0 reads no second scale
      }
    }
  }
  int64_t* order = sc.order(nb);
  int64_t items = 0;
  for (int blk = 0; blk < kGroup; ++blk)
    for (int64_t b = blk; b < nb; b += kGroup) order[items++] = b;
  TileInputs in;
  in.order = order;
  in.products = sc.products(2 * kLag * kStrip * 16);
  const uint8_t* wdata = static_cast<const uint8_t*>(a.w.data);
  int configured = 0;
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t r0 = s * kStrip;
    const int rows = static_cast<int>(std::min<int64_t>(kStrip, a.w.rows - r0));
    const uint8_t* packed = a.w.packed ? a.w.packed + s * nb * kPackedBlock<T> : own;
    if (!a.w.packed) pack_any_strip<T>(wdata + r0 * a.w.row_bytes, a.w.row_bytes, rows, nb, own);
    if constexpr (T != kQ8_0) expand_strip<T>(packed, nb, bt);
    // The next packed strip arrives while this one's tiles compute (block by block, from the
    // first tile of x's rows).
    in.next = a.w.packed && s + 1 < s1 ? packed + nb * kPackedBlock<T> : nullptr;
    for (int64_t t = 0; t < xtiles; ++t) {
      const int m = static_cast<int>(std::min<int64_t>(kStrip, a.n - t * kStrip));
      if (m != configured) {
        configure(m);
        configured = m;
      }
      in.x_scales = xsc + t * nb * 2 * kStrip;
      kTiles[m - 1](*a.x, t * kStrip, nb, bt, packed, rows, a.y + r0, a.ldy, a.bias ? a.bias + r0 : nullptr, in);
      in.next = nullptr;
    }
  }
  if (configured) release();
}

}  // namespace

bool amx_supports(uint32_t type) { return type == kQ4_0 || type == kQ4_1 || type == kQ8_0; }

void amx_strips(const AmxCall& a, int64_t s0, int64_t s1) {
  if (a.w.type == kQ4_0)
    strips<kQ4_0>(a, s0, s1);
  else if (a.w.type == kQ4_1)
    strips<kQ4_1>(a, s0, s1);
  else
    strips<kQ8_0>(a, s0, s1);
}

void amx_pack_strips(const QMatrix& w, int64_t s0, int64_t s1, uint8_t* out) {
  const int64_t nb = w.cols / kBlock;
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  for (int64_t s = s0; s < s1; ++s) {
    const int64_t r0 = s * kStrip;
    const int rows = static_cast<int>(std::min<int64_t>(kStrip, w.rows - r0));
    const uint8_t* src = wdata + r0 * w.row_bytes;
    uint8_t* dst = out + s * nb * packed_block_bytes(w.type);
    if (w.type == kQ4_0)
      pack_any_strip<kQ4_0>(src, w.row_bytes, rows, nb, dst);
    else if (w.type == kQ4_1)
      pack_any_strip<kQ4_1>(src, w.row_bytes, rows, nb, dst);
    else
      pack_any_strip<kQ8_0>(src, w.row_bytes, rows, nb, dst);
  }
}

}  // namespace longctx::kernels::qmm

#else  // not x86-64

namespace longctx::kernels::qmm {
bool amx_supports(uint32_t) { return false; }
void amx_strips(const AmxCall&, int64_t, int64_t) {}
void amx_pack_strips(const QMatrix&, int64_t, int64_t, uint8_t*) {}
}  // namespace longctx::kernels::qmm

#endif
