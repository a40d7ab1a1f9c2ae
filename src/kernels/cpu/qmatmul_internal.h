// Shared between cpu/qmatmul.cc (driver, activation quantization, scalar path) and
// cpu/qmatmul_x86.cc (AVX2 and AVX-512 VNNI paths). Not part of the kernels:: API.
#pragma once
#include <cstdint>
#include <cstring>

#include "kernels/qmatmul.h"
#include "quant/formats.h"

namespace longctx::kernels::qmm {

inline constexpr int kBlock = 32;  // elements per Q8_0 / Q4_0 / Q4_1 block
inline constexpr int kLanes = 8;   // int32 lanes per block: lane l sums bytes 4l .. 4l+3

// Block bytes and where qs starts (after d, and m for Q4_1), for the three block types.
template <uint32_t T>
inline constexpr int64_t kBlockBytes = T == kQ8_0   ? 34
                                       : T == kQ4_0 ? 18
                                                           : 20;
template <uint32_t T>
inline constexpr int kQsOffset = T == kQ4_1 ? 4 : 2;

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The activations of one call, quantized (formula in qmatmul.h). Row i (nb = in / 32 blocks,
// nbp = nb rounded up to a whole group of kGroup) lives at base + i * stride:
//   qs  int8  [nbp * 32]  q_j. Element order: natural on the scalar and AVX2 paths and for Q8_0;
//                         for Q4 on the AVX-512 path see below
//   dxv fp32  [nb * 8]    d_b repeated over the block's 8 int32 lanes (lane l sums bytes
//                         4l .. 4l+3); AVX2
//   ci  int32 [nb * 8]    corr * (q_4l + .. + q_4l+3): removes the weight operand's offset lane by
//                         lane (AVX2 Q4_0: nibble - 8, corr -8)
//   sv  fp32  [nb * 8]    d_b * (q_4l + .. + q_4l+3): Q4_1's m term, AVX2
//   d   fp32  [nbp]       d_b
//   s   fp32  [nbp]       d_b * sum_j q_j: Q4_1's m term
//   c   int32 [nbp]       corr * sum_j q_j: the weight's offset on AVX-512 (Q4_0: nibble - 8,
//                         corr -8; Q8_0: q + 128, corr -128)
// Arrays a path does not read are left unwritten.
//
// AVX-512 Q4 layout. Blocks come in groups of kGroup = 16 (4 quads of 4 blocks); a quad's 128
// bytes hold elements 0..15 of its 4 blocks, then elements 16..31 of them, so that one 64-byte
// operand carries 4 blocks and every 32-bit lane of vpdpbusd stays inside one block. d, s and c
// of a group are stored in the order the lane reduction leaves the block sums in: position
// 4k + j holds block 4j + k. The last group is padded with zero blocks (q, d, s, c all 0).
// AVX-512 Q8_0 rows keep q in element order, with d, s, c in that same group order; the AMX
// path's rows (natural) keep everything in element and block order.
inline constexpr int kGroup = 16;
inline int64_t padded_blocks(int64_t in) { return (in / kBlock + kGroup - 1) / kGroup * kGroup; }

// Byte offsets of the arrays of one row.
struct XRowPtrs {
  int8_t* qs;
  float* dxv;
  int32_t* ci;
  float* sv;
  float* d;
  float* s;
  int32_t* c;
  XRowPtrs(uint8_t* row, int64_t in) {
    const int64_t nb = in / kBlock, nbp = padded_blocks(in);
    qs = reinterpret_cast<int8_t*>(row);
    dxv = reinterpret_cast<float*>(row + nbp * kBlock);
    ci = reinterpret_cast<int32_t*>(dxv + nb * kLanes);
    sv = reinterpret_cast<float*>(ci + nb * kLanes);
    d = sv + nb * kLanes;
    s = d + nbp;
    c = reinterpret_cast<int32_t*>(s + nbp);
  }
  static int64_t bytes(int64_t in) {
    const int64_t nb = in / kBlock, nbp = padded_blocks(in);
    return nbp * kBlock + 3 * nb * kLanes * 4 + 3 * nbp * 4;
  }
};

struct XRows {
  uint8_t* base = nullptr;
  int64_t stride = 0;  // bytes, a multiple of 64
  int64_t in = 0;

  static int64_t row_stride(int64_t in) { return (XRowPtrs::bytes(in) + 63) / 64 * 64; }
  XRowPtrs row(int64_t i) const { return XRowPtrs(base + i * stride, in); }
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

// One row x[in] into an XRows row: the arrays its path reads (corr as in XRows::c; ci, sv and c
// only where the type needs them). Every quantizer rounds the same way, so for finite x all
// paths get the same q, d and s (only the order of the elements differs).
void quantize_x_scalar(const float* x, int64_t in, uint8_t* row);
void quantize_x_avx2(const float* x, int64_t in, uint32_t type, uint8_t* row);
// natural: Q4 rows for the AMX path, in the scalar layout (qs in element order, d, s and c in
// block order) instead of the VNNI tile's group order.
void quantize_x_avx512(const float* x, int64_t in, uint32_t type, uint8_t* row, bool natural = false);

// Tile shapes the driver asks for: rx in 1..4; rw in {1, 2, 4} when rx == 1, {1, 2} otherwise.
// Null for a shape or type a path lacks.
TileFn avx2_tile(uint32_t type, int rw, int rx);
TileFn avx512_tile(uint32_t type, int rw, int rx);

// The AMX path (cpu/qmatmul_amx.cc): Q4_0 / Q4_1 / Q8_0 W, x quantized by
// quantize_x_avx512(.., natural = true). Rows of y are bit-identical to the AVX-512 VNNI tiles'.
struct AmxCall {
  QMatrix w;
  const XRows* x = nullptr;
  int64_t n = 0;  // rows of x
  float* y = nullptr;
  int64_t ldy = 0;
  const float* bias = nullptr;
};
inline constexpr int64_t kAmxStrip = 16;  // rows of W per strip
// Bytes of one block of a packed strip (qmatmul_pack), those of 16 blocks of W: Q4: 256 of
// nibbles, 32 of fp16 scales d, and for Q4_1 32 of offsets m; Q8_0: its B tile (512) and 32 of
// scales.
constexpr int64_t packed_block_bytes(uint32_t type) { return type == kQ4_1 ? 320 : type == kQ8_0 ? 544 : 288; }
// The types of the AMX path (Q4_0, Q4_1, Q8_0), whose rows equal the VNNI tiles' bit for bit.
bool amx_supports(uint32_t type);
// Strips [s0, s1) of W in the packed form, at out + s * (cols / 32) * packed_block_bytes.
void amx_pack_strips(const QMatrix& w, int64_t s0, int64_t s1, uint8_t* out);
// Strips [s0, s1) of kAmxStrip rows of W against all rows of x. Only once the OS granted the
// tile state to the process (cpu/qmatmul.cc); configures and releases the calling thread's tiles.
void amx_strips(const AmxCall& a, int64_t s0, int64_t s1);

// Picks K::tile<RW, RX> for the shapes above.
template <class K>
TileFn pick_tile(int rw, int rx) {
  if (rx == 1) return rw == 4 ? &K::template tile<4, 1> : rw == 2 ? &K::template tile<2, 1> : &K::template tile<1, 1>;
  const bool two = rw == 2;
  switch (rx) {
    case 2:
      return two ? &K::template tile<2, 2> : &K::template tile<1, 2>;
    case 3:
      return two ? &K::template tile<2, 3> : &K::template tile<1, 3>;
    default:
      return two ? &K::template tile<2, 4> : &K::template tile<1, 4>;
  }
}

}  // namespace longctx::kernels::qmm
