// Shared between cpu/qmatmul.cc (driver, activation quantization, scalar path) and
// cpu/qmatmul_x86.cc (AVX2 and AVX-512 VNNI paths). Not part of the kernels:: API.
#pragma once
#include <cstdint>

#include "kernels/qmatmul.h"

namespace longctx::kernels::qmm {

inline constexpr int kBlock = 32;  // elements per Q8_0 / Q4_0 / Q4_1 block
inline constexpr int kLanes = 8;   // int32 lanes per block: lane l sums bytes 4l .. 4l+3

// The activations of one call, quantized (formula in qmatmul.h). Row i (nb = in / 32 blocks)
// lives at base + i * stride:
//   qs  int8  [in]         q_j
//   dxv fp32  [nb * 8]     d_b repeated over the block's 8 int32 lanes (SIMD paths)
//   ci  int32 [nb * 8]     corr * (q_4l + .. + q_4l+3): the start value of vpdpbusd / the
//                          addend after vpmaddwd that removes the weight's offset (Q8_0 as
//                          q + 128 under VNNI: corr -128; Q4_0's nibble - 8: corr -8)
//   sv  fp32  [nb * 8]     d_b * (q_4l + .. + q_4l+3) (Q4_1's m term, SIMD paths)
//   d   fp32  [nb]         d_b
//   s   fp32  [nb]         d_b * sum_j q_j (Q4_1's m term, scalar path)
// Arrays a path does not read are left unwritten.
struct XRows {
  uint8_t* base = nullptr;
  int64_t stride = 0;  // bytes, a multiple of 64
  int64_t in = 0;

  static int64_t row_stride(int64_t in) { return (4 * in + in / 4 + 63) / 64 * 64; }
  const int8_t* qs(int64_t i) const { return reinterpret_cast<const int8_t*>(base + i * stride); }
  const float* dxv(int64_t i) const { return reinterpret_cast<const float*>(base + i * stride + in); }
  const int32_t* ci(int64_t i) const { return reinterpret_cast<const int32_t*>(base + i * stride + 2 * in); }
  const float* sv(int64_t i) const { return reinterpret_cast<const float*>(base + i * stride + 3 * in); }
  const float* d(int64_t i) const { return reinterpret_cast<const float*>(base + i * stride + 4 * in); }
  const float* s(int64_t i) const { return d(i) + in / kBlock; }
};

// One tile: rows [r0, r0 + rw) of W against rows [i0, i0 + rx) of x, written to
// y[i0 + i, r0 + r] = dot + bias[r0 + r].
struct Tile {
  const uint8_t* w = nullptr;  // row r0 of W
  int64_t row_bytes = 0, cols = 0;
  const XRows* xq = nullptr;  // quantized x (Q types)
  const float* xf = nullptr;  // fp32 x [n, cols] (F16)
  int64_t i0 = 0;
  float* y = nullptr;  // &y[i0, r0]
  int64_t ldy = 0;
  const float* bias = nullptr;  // &bias[r0] or null
  int rw = 1, rx = 1;
};
using TileFn = void (*)(const Tile&);

// Tile shapes the driver asks for: rx in 1..4; rw in {1, 2, 4} when rx == 1, {1, 2} otherwise.
// Null for a shape or type a path lacks.
TileFn avx2_tile(uint32_t type, int rw, int rx);
TileFn avx512_tile(uint32_t type, int rw, int rx);

// Picks K::tile<RW, RX> for the shapes above.
template <class K>
TileFn pick_tile(int rw, int rx) {
  if (rx == 1) return rw == 4 ? &K::template tile<4, 1> : rw == 2 ? &K::template tile<2, 1> : &K::template tile<1, 1>;
  const bool two = rw == 2;
  switch (rx) {
    case 2: return two ? &K::template tile<2, 2> : &K::template tile<1, 2>;
    case 3: return two ? &K::template tile<2, 3> : &K::template tile<1, 3>;
    default: return two ? &K::template tile<2, 4> : &K::template tile<1, 4>;
  }
}

}  // namespace longctx::kernels::qmm
