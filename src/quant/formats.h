// GGUF tensor element types: the block layouts of ggml (ggml-common.h), and rows converted to
// and from fp32. Type ids are ggml's (enum ggml_type, the `type` of io::GgufTensorInfo); ids,
// names, block sizes and bytes per block are core/element_type.h's, the one table of them.
//
// Supported:
//   quantize_row    F32, F16, BF16, Q8_0, Q4_0, Q4_1
//   dequantize_row  the same, plus the K-quants Q4_K, Q5_K, Q6_K
// Quantization follows ggml's reference quantizers (quantize_row_*_ref), written so that the
// bytes equal those of gguf-py's gguf.quants.quantize (tests/quant compares them bit for bit),
// and dequantization equals gguf.quants.dequantize bit for bit. The few places where ggml's C
// and gguf-py could differ are settled in gguf-py's favour (see formats.cc).
//
// A block is `block_size` consecutive elements of a row stored in `block_bytes` bytes; a row of
// a quantized tensor is a whole number of blocks (dims[0] % block_size == 0). All multi-byte
// fields are little-endian; the scales d, m, dmin are fp16 (quant/fp16.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/element_type.h"
#include "core/status.h"

namespace longctx::quant {

inline constexpr int kQK = 32;          // elements per block of Q8_0, Q4_0, Q4_1 (QK8_0, QK4_0, QK4_1)
inline constexpr int kQK_K = 256;       // elements per K-quant super-block (QK_K)
inline constexpr int kKScaleSize = 12;  // K_SCALE_SIZE: 8 6-bit scales + 8 6-bit mins

// x[i] = qs[i] * d
struct BlockQ8_0 {
  uint16_t d;  // fp16
  int8_t qs[kQK];
};
// x[i] = (nibble[i] - 8) * d; qs[j] holds element j in its low nibble and j + 16 in its high one.
struct BlockQ4_0 {
  uint16_t d;  // fp16
  uint8_t qs[kQK / 2];
};
// x[i] = nibble[i] * d + m; nibbles packed as in Q4_0.
struct BlockQ4_1 {
  uint16_t d;  // fp16
  uint16_t m;  // fp16
  uint8_t qs[kQK / 2];
};
// 8 sub-blocks of 32: x = d * sc[j] * q - dmin * mn[j], q a 4-bit value. The 6-bit sc and mn are
// packed in `scales` (get_scale_min_k4). Sub-blocks 2c and 2c+1 are the low and high nibbles of
// qs[32c .. 32c+31].
struct BlockQ4_K {
  uint16_t d;     // fp16, super-block scale of the scales
  uint16_t dmin;  // fp16, super-block scale of the mins
  uint8_t scales[kKScaleSize];
  uint8_t qs[kQK_K / 2];
};
// As Q4_K with a fifth bit: bit j of qh[l] is the high bit of element l of sub-block j.
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[kKScaleSize];
  uint8_t qh[kQK_K / 8];
  uint8_t qs[kQK_K / 2];
};
// 16 sub-blocks of 16: x = d * scales[j] * (q - 32), q 6 bits: 4 low bits in ql, 2 high in qh.
struct BlockQ6_K {
  uint8_t ql[kQK_K / 2];
  uint8_t qh[kQK_K / 4];
  int8_t scales[kQK_K / 16];
  uint16_t d;  // fp16
};
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Over core/element_type.h's table: elements per block (1 for F32/F16/BF16, 32, 256, ...) and
// bytes per block, for any type ggml defines; 0 for an unknown id.
int64_t block_size(uint32_t type);
int64_t block_bytes(uint32_t type);
// Bytes of a row of n elements; -1 for an unknown id, n < 0 or n not a whole number of blocks.
int64_t row_bytes(uint32_t type, int64_t n);
// "Q8_0" (ggml's name) or "type 99".
std::string type_name(uint32_t type);
// Types with more than one element per block (Q*, IQ*, TQ*, MXFP4): their values are already
// rounded to a coarse grid.
bool is_quantized(uint32_t type);

bool can_dequantize(uint32_t type);
bool can_quantize(uint32_t type);

// Rows of n elements (n a whole number of blocks; a row of a tensor, or several rows at once).
// `src` / `dst` need no alignment. Errors: a type without that direction (naming it and the
// supported ones), or n not a whole number of blocks.
Status dequantize_row(uint32_t type, const void* src, float* dst, int64_t n);
Status quantize_row(uint32_t type, const float* src, void* dst, int64_t n);

}  // namespace longctx::quant
