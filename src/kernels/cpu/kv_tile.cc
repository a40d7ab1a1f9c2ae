// Highway implementations of kernels/kv_tile.h, compiled once per SIMD target and dispatched at
// run time.
//
// kv_scores takes the keys 4 at a time against a group of up to kMaxRows query rows: each chunk
// of N elements of the 4 key rows is loaded and converted once, then FMAed into 4 x G
// accumulators (one per query row and key). The 4 accumulators of a query row are reduced
// together (StoreSums4: 13 instructions for 4 sums with 16 lanes, against ~9 for each sum
// alone). With more query rows than one group, the groups loop inside the block of 4 keys, so a
// key row comes from memory once and is re-read from L1 by the later groups.
//
// kv_accumulate keeps a G rows x C chunks panel of acc in registers over a run of kAccKeys keys:
// each value chunk is converted once per key and FMAed against G broadcast weights. Wider heads
// are covered by several panels; each reads its own columns of the value rows, so the bytes of
// V read per group stay the same.
//
// With more rows than one group, fp16 / Q8_0 rows are first converted into fp32 scratch and the
// fp32 kernels run on that, so the conversion is paid once rather than once per group.
//
// Q8_0 elements are converted as d * qs before the FMAs, not folded in after a per-block dot:
// the product is exact in fp32, so a Q8_0 row computes exactly what its dequantized fp32 row
// would, and the scale costs one multiply per converted chunk, shared by all query rows.
//
// Throughput is bound by the two 512-bit ports (FMA, conversions, shuffles) rather than loads:
// see tests/kernels/kv_tile_test.cc (KvTile.Throughput) for the rates.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/kv_tile.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "kernels/kv_tile.h"
#include "quant/formats.h"
#include "quant/fp16.h"

HWY_BEFORE_NAMESPACE();
namespace longctx::kernels::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;
using V = hn::Vec<D>;

// Lane counts are compile-time constants on every x86 target; the register blocking below is
// written for that.
static_assert(!HWY_HAVE_SCALABLE, "kv_tile assumes fixed-width vectors");
constexpr int64_t kN = static_cast<int64_t>(hn::MaxLanes(D()));

#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3
// 32 vector registers: 16 accumulators + 4 key chunks + 4 Q8_0 scales + a query chunk.
constexpr int kMaxRows = 4;
#else
constexpr int kMaxRows = 2;  // 16 registers (or emulated vectors)
#endif
constexpr int kKeys = 4;          // keys per block of kv_scores (StoreSums4 reduces 4)
constexpr int kPanelChunks = 4;   // vectors per acc row in a kv_accumulate panel
constexpr int64_t kAccKeys = 64;  // keys per pass before a panel of acc goes back to memory
// fp32 scratch for converted fp16 / Q8_0 rows (on the stack: 16 KiB, stays in L1).
constexpr int64_t kScratchFloats = 4096;

constexpr int64_t kQK = quant::kQK;
constexpr int64_t kQ8Bytes = sizeof(quant::BlockQ8_0);
static_assert(kQK % kN == 0, "a Q8_0 block must be whole vectors");
static_assert(kN == 1 || kN == 4 || kN == 8 || kN == 16, "StoreSums4 knows 1 to 4 blocks of 128 bits");

// fp16 bits (one per lane, in 16-bit lanes) to fp32, exactly as quant::fp16_to_fp32.
template <class VH>
HWY_INLINE V HalfToFloat(D df, VH h) {
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)
  // vcvtph2ps: exact, and it quiets NaNs (payload kept) just as the scalar converter does.
  const hn::Rebind<hwy::float16_t, D> dh;
  return hn::PromoteTo(df, hn::BitCast(dh, h));
#else
  // Highway's PromoteTo without F16C rebiases exponent 31 like any other, so Inf and NaN would
  // come out as large finite numbers: convert by hand.
  const hn::RebindToUnsigned<D> du;
  const hn::RebindToSigned<D> di;
  const auto x = hn::PromoteTo(du, h);
  const auto exp = hn::And(x, hn::Set(du, 0x7c00u));
  const auto mant = hn::And(x, hn::Set(du, 0x3ffu));
  const auto sign = hn::ShiftLeft<16>(hn::And(x, hn::Set(du, 0x8000u)));
  // Normal: shift exponent and mantissa into place and rebias the exponent from 15 to 127.
  const auto normal = hn::Add(hn::ShiftLeft<13>(hn::And(x, hn::Set(du, 0x7fffu))), hn::Set(du, 0x38000000u));
  // Inf / NaN: all-ones exponent, mantissa kept, the quiet bit set on NaNs.
  const auto quiet = hn::IfThenZeroElse(hn::Eq(mant, hn::Zero(du)), hn::Set(du, 0x400000u));
  const auto special = hn::Or(hn::Or(hn::ShiftLeft<13>(mant), hn::Set(du, 0x7f800000u)), quiet);
  // Zero or subnormal: mant * 2^-24, exact (and never an fp32 subnormal, so FTZ/DAZ cannot bite).
  const auto sub = hn::BitCast(du, hn::Mul(hn::ConvertTo(df, hn::BitCast(di, mant)), hn::Set(df, 0x1p-24f)));
  const auto bits = hn::IfThenElse(hn::Eq(exp, hn::Zero(du)), sub,
                                   hn::IfThenElse(hn::Eq(exp, hn::Set(du, 0x7c00u)), special, normal));
  return hn::BitCast(df, hn::Or(bits, sign));
#endif
}

// How each element type loads N consecutive elements of a row (from element i, a multiple of
// N) as fp32, and one element for the scalar tails. Q8_0 rows load qs unscaled; Scale gives the
// d of the block holding element i, broadcast.
struct F32Row {
  static constexpr bool kScaled = false;
  static HWY_INLINE V Load(D d, const uint8_t* row, int64_t i) {
    return hn::LoadU(d, reinterpret_cast<const float*>(row) + i);
  }
  static HWY_INLINE V Scale(D d, const uint8_t*, int64_t) { return hn::Set(d, 1.0f); }
  static float At(const uint8_t* row, int64_t i) {
    float x;
    std::memcpy(&x, row + i * 4, 4);
    return x;
  }
};

struct F16Row {
  static constexpr bool kScaled = false;
  static HWY_INLINE V Load(D d, const uint8_t* row, int64_t i) {
    const hn::Rebind<uint16_t, D> dh;
    return HalfToFloat(d, hn::LoadU(dh, reinterpret_cast<const uint16_t*>(row) + i));
  }
  static HWY_INLINE V Scale(D d, const uint8_t*, int64_t) { return hn::Set(d, 1.0f); }
  static float At(const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + i * 2, 2);
    return quant::fp16_to_fp32(h);
  }
};

struct Q8Row {
  static constexpr bool kScaled = true;
  static HWY_INLINE V Load(D d, const uint8_t* row, int64_t i) {
    const hn::Rebind<int8_t, D> d8;
    const hn::RebindToSigned<D> di;
    const auto* qs = reinterpret_cast<const int8_t*>(row + (i / kQK) * kQ8Bytes + 2 + i % kQK);
    return hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, qs)));
  }
  static HWY_INLINE V Scale(D d, const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + (i / kQK) * kQ8Bytes, 2);
    return HalfToFloat(d, hn::Set(hn::Rebind<uint16_t, D>(), h));
  }
  static float At(const uint8_t* row, int64_t i) {
    uint16_t h;
    std::memcpy(&h, row + (i / kQK) * kQ8Bytes, 2);
    const auto q = static_cast<int8_t>(row[(i / kQK) * kQ8Bytes + 2 + i % kQK]);
    return quant::fp16_to_fp32(h) * static_cast<float>(q);
  }
};

// A Prefetch range asked for in `ticks` steps of whole cache lines (addresses as integers: the
// range is never dereferenced, and may lie outside any object the kernel reads).
struct Spread {
  uintptr_t at = 0, end = 0, per = 0;
  Spread(Prefetch next, int64_t ticks) {
    if (next.data == nullptr || next.bytes <= 0 || ticks <= 0) return;
    at = reinterpret_cast<uintptr_t>(next.data) & ~uintptr_t{63};
    end = reinterpret_cast<uintptr_t>(next.data) + static_cast<uintptr_t>(next.bytes);
    const uintptr_t lines = (end - at + 63) / 64, n = static_cast<uintptr_t>(ticks);
    per = (lines + n - 1) / n * 64;
  }
  HWY_INLINE void Tick() {
    for (const uintptr_t stop = std::min(at + per, end); at < stop; at += 64) {
      __builtin_prefetch(reinterpret_cast<const void*>(at));
    }
  }
};

// The first element the vector loops do not cover: fp32 / fp16 heads that are not whole vectors
// end in a scalar tail; Q8_0 heads are whole blocks, hence whole vectors.
template <class Row>
int64_t VectorPart(int64_t hd) {
  return Row::kScaled ? hd : hd - hd % kN;
}

// Stores the lane sums of a, b, c, e to out[0..nk-1] (nk <= 4).
// (A template so that only the branch for this target's width is instantiated.)
template <class DF, class VF = hn::Vec<DF>>
HWY_INLINE void StoreSums4(DF d, VF a, VF b, VF c, VF e, float* out, int64_t nk) {
#if HWY_TARGET == HWY_SCALAR
  const float sums[4] = {hn::GetLane(a), hn::GetLane(b), hn::GetLane(c), hn::GetLane(e)};
  for (int64_t kk = 0; kk < nk; ++kk) out[kk] = sums[kk];
#else
  // Within each 128-bit block, [a0 b0 a1 b1] + [a2 b2 a3 b3] = [a02 b02 a13 b13] ...
  const VF ab = hn::Add(hn::InterleaveLower(d, a, b), hn::InterleaveUpper(d, a, b));
  const VF ce = hn::Add(hn::InterleaveLower(d, c, e), hn::InterleaveUpper(d, c, e));
  // ... then the 64-bit halves: [a02 b02 c02 e02] + [a13 b13 c13 e13] = one partial sum of each.
  const hn::Repartition<uint64_t, DF> d64;
  const auto ab64 = hn::BitCast(d64, ab), ce64 = hn::BitCast(d64, ce);
  const VF sum = hn::Add(hn::BitCast(d, hn::InterleaveLower(d64, ab64, ce64)),
                        hn::BitCast(d, hn::InterleaveUpper(d64, ab64, ce64)));
  // Finally add the 128-bit blocks together.
  const hn::Full128<float> d4;
  hn::Vec<decltype(d4)> s4;
  if constexpr (hn::MaxLanes(DF()) == 16) {
    const hn::Half<DF> dh;
    const auto s8 = hn::Add(hn::LowerHalf(dh, sum), hn::UpperHalf(dh, sum));
    s4 = hn::Add(hn::LowerHalf(d4, s8), hn::UpperHalf(d4, s8));
  } else if constexpr (hn::MaxLanes(DF()) == 8) {
    s4 = hn::Add(hn::LowerHalf(d4, sum), hn::UpperHalf(d4, sum));
  } else {
    s4 = sum;  // a single block
  }
  if (nk == 4) {
    hn::StoreU(s4, d4, out);
  } else {
    hn::BlendedStore(s4, hn::FirstN(d4, static_cast<size_t>(nk)), d4, out);
  }
#endif
}

// s[g * ld_s + kk] = dot(q + g * hd, key row kk)  for g < G, kk < nk (1..4). rows[kk] for
// kk >= nk repeats a valid row, so every load stays in bounds; those sums are dropped.
// kFull (nk == 4, all but the last block) keeps the partial-store code out of the hot path.
template <int G, class Row, bool kFull>
HWY_INLINE void ScoresBlock(const uint8_t* const* rows, int64_t nk, const float* q, int64_t hd, float* s,
                            int64_t ld_s) {
  const D d;
  const int64_t hv = VectorPart<Row>(hd);
  V acc[G][kKeys];
  HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
    HWY_UNROLL(4) for (int kk = 0; kk < kKeys; ++kk) acc[g][kk] = hn::Zero(d);
  }
  // Q8_0: one pass per block (its scales hoisted); fp32 / fp16: one pass over the whole row.
  const int64_t step = Row::kScaled ? kQK : hv;
  for (int64_t b = 0; b < hv; b += step) {
    V sc[kKeys];
    HWY_UNROLL(4) for (int kk = 0; kk < kKeys; ++kk) sc[kk] = Row::Scale(d, rows[kk], b);
    for (int64_t i = b; i < b + step; i += kN) {
      V kv[kKeys];
      HWY_UNROLL(4) for (int kk = 0; kk < kKeys; ++kk) {
        kv[kk] = Row::Load(d, rows[kk], i);
        if constexpr (Row::kScaled) kv[kk] = hn::Mul(kv[kk], sc[kk]);
      }
      HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
        const V qv = hn::LoadU(d, q + g * hd + i);
        HWY_UNROLL(4) for (int kk = 0; kk < kKeys; ++kk) acc[g][kk] = hn::MulAdd(qv, kv[kk], acc[g][kk]);
      }
    }
  }
  HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
    float* out = s + g * ld_s;
    StoreSums4(d, acc[g][0], acc[g][1], acc[g][2], acc[g][3], out, kFull ? kKeys : nk);
    for (int64_t kk = 0; kk < nk && hv < hd; ++kk) {
      float t = 0.0f;
      for (int64_t i = hv; i < hd; ++i) t += q[g * hd + i] * Row::At(rows[kk], i);
      out[kk] += t;
    }
  }
}

// ScoresBlock for a group of n <= G rows, G a template argument.
template <class Row, bool kFull, int G = kMaxRows>
HWY_INLINE void ScoresGroup(int64_t n, const uint8_t* const* rows, int64_t nk, const float* q, int64_t hd, float* s,
                            int64_t ld_s) {
  if constexpr (G > 1) {
    if (n < G) return ScoresGroup<Row, kFull, G - 1>(n, rows, nk, q, hd, s, ld_s);
  }
  ScoresBlock<G, Row, kFull>(rows, nk, q, hd, s, ld_s);
}

// The keys [j0, j0 + nk) against all R rows, in groups.
template <class Row, bool kFull>
HWY_INLINE void ScoresKeys(const uint8_t* k, int64_t row_bytes, int64_t j0, int64_t nk, const float* q, int64_t R,
                           int64_t hd, float* s, int64_t ld_s) {
  // Rows split into equal groups (9 rows: 3 + 3 + 3, not 4 + 4 + 1), so no group wastes the
  // key conversions on a single row.
  const int64_t groups = (R + kMaxRows - 1) / kMaxRows, base = R / groups, extra = R % groups;
  const uint8_t* rows[kKeys];
  for (int64_t kk = 0; kk < kKeys; ++kk) rows[kk] = k + (j0 + std::min(kk, nk - 1)) * row_bytes;
  int64_t r = 0;
  for (int64_t gi = 0; gi < groups; ++gi) {
    const int64_t n = base + (gi < extra ? 1 : 0);
    ScoresGroup<Row, kFull>(n, rows, nk, q + r * hd, hd, s + r * ld_s + j0, ld_s);
    r += n;
  }
}

// n rows in Row's type (from src, row_bytes apart) to fp32 rows of hd floats at out.
template <class Row>
HWY_INLINE void ConvertRows(const uint8_t* src, int64_t row_bytes, int64_t n, int64_t hd, float* out) {
  const D d;
  const int64_t hv = VectorPart<Row>(hd);
  for (int64_t j = 0; j < n; ++j) {
    const uint8_t* row = src + j * row_bytes;
    float* o = out + j * hd;
    if constexpr (Row::kScaled) {
      for (int64_t b = 0; b < hv; b += kQK) {
        const V sc = Row::Scale(d, row, b);
        for (int64_t i = b; i < b + kQK; i += kN) hn::StoreU(hn::Mul(Row::Load(d, row, i), sc), d, o + i);
      }
    } else {
      for (int64_t i = 0; i < hv; i += kN) hn::StoreU(Row::Load(d, row, i), d, o + i);
    }
    for (int64_t i = hv; i < hd; ++i) o[i] = Row::At(row, i);
  }
}

template <class Row>
void ScoresT(const uint8_t* k, int64_t row_bytes, int64_t cols, const float* q, int64_t R, int64_t hd, float* s,
             int64_t ld_s, Prefetch next) {
  if constexpr (!std::is_same_v<Row, F32Row>) {
    const int64_t keys = kScratchFloats / hd / kKeys * kKeys;
    if (R > kMaxRows && keys > 0) {
      Spread spread(next, (cols + keys - 1) / keys);
      HWY_ALIGN float buf[kScratchFloats];
      for (int64_t j0 = 0; j0 < cols; j0 += keys) {
        const int64_t n = std::min(keys, cols - j0);
        spread.Tick();
        ConvertRows<Row>(k + j0 * row_bytes, row_bytes, n, hd, buf);
        ScoresT<F32Row>(reinterpret_cast<const uint8_t*>(buf), hd * 4, n, q, R, hd, s + j0, ld_s, Prefetch{});
      }
      return;
    }
  }
  Spread spread(next, (cols + kKeys - 1) / kKeys);
  int64_t j0 = 0;
  for (; j0 + kKeys <= cols; j0 += kKeys) {
    spread.Tick();
    ScoresKeys<Row, true>(k, row_bytes, j0, kKeys, q, R, hd, s, ld_s);
  }
  spread.Tick();
  if (j0 < cols) ScoresKeys<Row, false>(k, row_bytes, j0, cols - j0, q, R, hd, s, ld_s);
}

// a[g][c] += p[g * ld_p] * value[i0 + c * kN ...]: one value row (its columns from i0) into a
// G x C panel.
template <int G, int C, class Row>
HWY_INLINE void AccumulateKey(V (&a)[G][C], const uint8_t* row, const float* p, int64_t ld_p, int64_t i0) {
  const D d;
  // Whether chunk c starts a Q8_0 block is known at compile time when panels start on blocks
  // (true with 16 lanes); otherwise it is tested per chunk.
  constexpr bool kAligned = (kPanelChunks * kN) % kQK == 0;
  V x[C];
  V sc = hn::Set(d, 1.0f);
  HWY_UNROLL(8) for (int c = 0; c < C; ++c) {
    const int64_t i = i0 + c * kN;
    x[c] = Row::Load(d, row, i);
    if constexpr (Row::kScaled) {
      if (kAligned ? (c * kN) % kQK == 0 : (c == 0 || i % kQK == 0)) sc = Row::Scale(d, row, i);
      x[c] = hn::Mul(x[c], sc);
    }
  }
  HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
    const V w = hn::Set(d, p[g * ld_p]);
    HWY_UNROLL(8) for (int c = 0; c < C; ++c) a[g][c] = hn::MulAdd(w, x[c], a[g][c]);
  }
}

// acc[g * hd + i0 + i] += sum_{j0 <= j < j1} p[g * ld_p + j] * value_j[i0 + i]  for g < G,
// i < C * kN: a G x C panel of acc held in registers over the keys.
template <int G, int C, class Row>
HWY_INLINE void AccumulatePanel(const uint8_t* v, int64_t row_bytes, int64_t j0, int64_t j1, const float* p,
                                int64_t ld_p, int64_t hd, int64_t i0, float* acc, Spread& spread) {
  const D d;
  // A small panel is too few FMA chains to hide the FMA latency (4 cycles, 2 per cycle): give it
  // a second set of accumulators for the odd keys.
  constexpr int kSets = G * C < 8 ? 2 : 1;
  V a[kSets][G][C];
  HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
    HWY_UNROLL(8) for (int c = 0; c < C; ++c) {
      a[0][g][c] = hn::LoadU(d, acc + g * hd + i0 + c * kN);
      // -0, not +0: x + -0 is x for every x, so a key whose products are all -0 still gives -0.
      if constexpr (kSets == 2) a[1][g][c] = hn::Set(d, -0.0f);
    }
  }
  int64_t j = j0;
  for (; j + kSets <= j1; j += kSets) {
    HWY_UNROLL(2) for (int t = 0; t < kSets; ++t) {
      spread.Tick();
      AccumulateKey<G, C, Row>(a[t], v + (j + t) * row_bytes, p + j + t, ld_p, i0);
    }
  }
  if (j < j1) {
    spread.Tick();
    AccumulateKey<G, C, Row>(a[0], v + j * row_bytes, p + j, ld_p, i0);
  }
  HWY_UNROLL(4) for (int g = 0; g < G; ++g) {
    HWY_UNROLL(8) for (int c = 0; c < C; ++c) {
      if constexpr (kSets == 2) a[0][g][c] = hn::Add(a[0][g][c], a[1][g][c]);
      hn::StoreU(a[0][g][c], d, acc + g * hd + i0 + c * kN);
    }
  }
}

// The panels covering acc's vector part for a group of n <= G rows (G a template argument).
template <class Row, int G = kMaxRows>
HWY_INLINE void AccumulateGroup(int64_t n, const uint8_t* v, int64_t row_bytes, int64_t j0, int64_t j1,
                                const float* p, int64_t ld_p, int64_t hd, float* acc, Spread& spread) {
  if constexpr (G > 1) {
    if (n < G) return AccumulateGroup<Row, G - 1>(n, v, row_bytes, j0, j1, p, ld_p, hd, acc, spread);
  }
  const int64_t hv = VectorPart<Row>(hd);
  int64_t i0 = 0;
  for (; i0 + kPanelChunks * kN <= hv; i0 += kPanelChunks * kN) {
    AccumulatePanel<G, kPanelChunks, Row>(v, row_bytes, j0, j1, p, ld_p, hd, i0, acc, spread);
  }
  static_assert(kPanelChunks == 4, "the narrower panels below");
  switch ((hv - i0) / kN) {
    case 1: AccumulatePanel<G, 1, Row>(v, row_bytes, j0, j1, p, ld_p, hd, i0, acc, spread); break;
    case 2: AccumulatePanel<G, 2, Row>(v, row_bytes, j0, j1, p, ld_p, hd, i0, acc, spread); break;
    case 3: AccumulatePanel<G, 3, Row>(v, row_bytes, j0, j1, p, ld_p, hd, i0, acc, spread); break;
    default: break;
  }
}

template <class Row>
void AccumulateT(const uint8_t* v, int64_t row_bytes, int64_t cols, const float* p, int64_t ld_p, int64_t R,
                 int64_t hd, float* acc, Prefetch next) {
  if constexpr (!std::is_same_v<Row, F32Row>) {
    const int64_t keys = std::min(kAccKeys, kScratchFloats / hd);
    if (R > kMaxRows && keys > 0) {
      Spread spread(next, (cols + keys - 1) / keys);
      HWY_ALIGN float buf[kScratchFloats];
      for (int64_t j0 = 0; j0 < cols; j0 += keys) {
        const int64_t n = std::min(keys, cols - j0);
        spread.Tick();
        ConvertRows<Row>(v + j0 * row_bytes, row_bytes, n, hd, buf);
        AccumulateT<F32Row>(reinterpret_cast<const uint8_t*>(buf), hd * 4, n, p + j0, ld_p, R, hd, acc, Prefetch{});
      }
      return;
    }
  }
  const int64_t groups = (R + kMaxRows - 1) / kMaxRows, base = R / groups, extra = R % groups;
  const int64_t hv = VectorPart<Row>(hd);
  // One tick per key of each panel call.
  const int64_t panels = hv / (kPanelChunks * kN) + (hv % (kPanelChunks * kN) != 0 ? 1 : 0);
  Spread spread(next, cols * groups * std::max<int64_t>(panels, 1));
  // Keys outermost, so a run of kAccKeys value rows stays in L1 while every group reads it.
  for (int64_t j0 = 0; j0 < cols; j0 += kAccKeys) {
    const int64_t j1 = std::min(cols, j0 + kAccKeys);
    int64_t r = 0;
    for (int64_t gi = 0; gi < groups; ++gi) {
      const int64_t n = base + (gi < extra ? 1 : 0);
      AccumulateGroup<Row>(n, v, row_bytes, j0, j1, p + r * ld_p, ld_p, hd, acc + r * hd, spread);
      for (int64_t g = r; g < r + n && hv < hd; ++g) {
        for (int64_t i = hv; i < hd; ++i) {
          float t = 0.0f;
          for (int64_t j = j0; j < j1; ++j) t += p[g * ld_p + j] * Row::At(v + j * row_bytes, i);
          acc[g * hd + i] += t;
        }
      }
      r += n;
    }
  }
}

// What in these kernels depends on a row's neighbours: kv_accumulate's accumulator sets per
// panel (AccumulatePanel's kSets, chosen by the size G of the row's group); kv_scores keeps one
// accumulator per row and key. A bit per panel width a row meets.
int SetsOfGroup(int64_t G, int64_t hd) {
  const int64_t hv = hd - hd % kN, rest = (hv % (kPanelChunks * kN)) / kN;
  int sig = hv >= kPanelChunks * kN && G * kPanelChunks < 8 ? 1 : 0;
  if (rest > 0 && G * rest < 8) sig |= 2;
  return sig;
}

// The accumulator sets of every group R rows are split into (as ScoresKeys and AccumulateT
// split them), or -1 when the groups differ.
int SetsOfRows(int64_t R, int64_t hd) {
  const int64_t groups = (R + kMaxRows - 1) / kMaxRows, base = R / groups, extra = R % groups;
  const int a = SetsOfGroup(base, hd);
  return extra > 0 && SetsOfGroup(base + 1, hd) != a ? -1 : a;
}

int64_t KvInvariantPositions(int64_t group, int64_t hd, int64_t max_rows) {
  const int lone = SetsOfRows(group, hd);
  if (lone < 0) return 1;
  int64_t n = 1;
  while (2 * n * group <= max_rows && SetsOfRows(2 * n * group, hd) == lone) n *= 2;
  return n;
}

void KvScores(uint32_t type, const void* k, int64_t row_bytes, int64_t cols, const float* q, int64_t R, int64_t hd,
              float* s, int64_t ld_s, Prefetch next) {
  const auto* kb = static_cast<const uint8_t*>(k);
  switch (type) {
    case kF32: return ScoresT<F32Row>(kb, row_bytes, cols, q, R, hd, s, ld_s, next);
    case kF16: return ScoresT<F16Row>(kb, row_bytes, cols, q, R, hd, s, ld_s, next);
    case kQ8_0: return ScoresT<Q8Row>(kb, row_bytes, cols, q, R, hd, s, ld_s, next);
    default: return;
  }
}

void KvAccumulate(uint32_t type, const void* v, int64_t row_bytes, int64_t cols, const float* p, int64_t ld_p,
                  int64_t R, int64_t hd, float* acc, Prefetch next) {
  const auto* vb = static_cast<const uint8_t*>(v);
  switch (type) {
    case kF32: return AccumulateT<F32Row>(vb, row_bytes, cols, p, ld_p, R, hd, acc, next);
    case kF16: return AccumulateT<F16Row>(vb, row_bytes, cols, p, ld_p, R, hd, acc, next);
    case kQ8_0: return AccumulateT<Q8Row>(vb, row_bytes, cols, p, ld_p, R, hd, acc, next);
    default: return;
  }
}

}  // namespace longctx::kernels::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "core/check.h"
#include "kernels/kv_tile.h"

namespace longctx::kernels {
HWY_EXPORT(KvScores);
HWY_EXPORT(KvAccumulate);
HWY_EXPORT(KvInvariantPositions);

int64_t kv_invariant_positions(int64_t group, int64_t hd, int64_t max_rows) {
  CHECK(group >= 1 && hd >= 1);
  return HWY_DYNAMIC_DISPATCH(KvInvariantPositions)(group, hd, max_rows);
}

int64_t kv_row_bytes(uint32_t type, int64_t n) {
  if (n < 0) return -1;
  switch (type) {
    case kF32: return n * 4;
    case kF16: return n * 2;
    case kQ8_0:
      return n % quant::kQK == 0 ? n / quant::kQK * static_cast<int64_t>(sizeof(quant::BlockQ8_0)) : -1;
    default: return -1;
  }
}

void kv_scores(uint32_t type, const void* k, int64_t row_bytes, int64_t cols, const float* q, int64_t R,
               int64_t hd, float* s, int64_t ld_s, Prefetch next) {
  CHECK(R >= 0 && cols >= 0 && hd >= 1 && ld_s >= cols);
  const int64_t bytes = kv_row_bytes(type, hd);
  CHECK_MSG(bytes > 0, "kv_scores: unsupported type, or Q8_0 with hd % 32 != 0");
  if (R == 0 || cols == 0) return;
  CHECK(cols == 1 || row_bytes >= bytes);
  HWY_DYNAMIC_DISPATCH(KvScores)(type, k, row_bytes, cols, q, R, hd, s, ld_s, next);
}

void kv_accumulate(uint32_t type, const void* v, int64_t row_bytes, int64_t cols, const float* p, int64_t ld_p,
                   int64_t R, int64_t hd, float* acc, Prefetch next) {
  CHECK(R >= 0 && cols >= 0 && hd >= 1 && ld_p >= cols);
  const int64_t bytes = kv_row_bytes(type, hd);
  CHECK_MSG(bytes > 0, "kv_accumulate: unsupported type, or Q8_0 with hd % 32 != 0");
  if (R == 0 || cols == 0) return;
  CHECK(cols == 1 || row_bytes >= bytes);
  HWY_DYNAMIC_DISPATCH(KvAccumulate)(type, v, row_bytes, cols, p, ld_p, R, hd, acc, next);
}

}  // namespace longctx::kernels
#endif
