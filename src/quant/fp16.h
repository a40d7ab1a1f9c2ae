// Exact conversions between fp32 and the two 16-bit float formats of GGUF tensors:
//   fp16 (IEEE 754 binary16: 1 sign, 5 exponent, 10 mantissa bits; ggml F16, numpy float16)
//   bf16 (bfloat16: the top 16 bits of an fp32; ggml BF16)
// fp32 -> 16 bits rounds to nearest, ties to even, like numpy's astype(float16), the F16C
// instruction vcvtps2ph and ggml's GGML_FP32_TO_BF16. Subnormals are kept (never flushed),
// overflow gives +-Inf, and a NaN stays a NaN of the same sign with the quiet bit set and the top
// payload bits kept (what vcvtps2ph does, so the scalar code and the F16C row path agree on every
// input). 16 bits -> fp32 is exact; an fp16 NaN likewise comes back quiet.
#pragma once
#include <bit>
#include <cstdint>

namespace longctx::quant {

inline float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0x1f) {  // Inf, or NaN (quieted, payload kept)
    return std::bit_cast<float>(sign | 0x7f800000u | (mant != 0 ? 0x400000u : 0u) | (mant << 13));
  }
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in fp32
    const float v = static_cast<float>(mant) * 0x1p-24f;
    return sign ? -v : v;
  }
  // Normal: rebias the exponent from 15 to 127.
  return std::bit_cast<float>(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t fp32_to_fp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) {  // NaN: quiet, keep the top 9 payload bits
    return static_cast<uint16_t>(sign | 0x7e00u | ((ax >> 13) & 0x3ffu));
  }
  // 65520 (0x477ff000) is halfway between 65504, the largest fp16, and 65536; the tie goes to the
  // even neighbour, which is Inf. Inf itself lands here too.
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (ax >= 0x38800000u) {           // |f| >= 2^-14: a normal fp16
    uint32_t r = ax - 0x38000000u;   // rebias the exponent from 127 to 15
    r += 0xfffu + ((r >> 13) & 1u);  // round to nearest even on the 13 dropped bits
    return static_cast<uint16_t>(sign | (r >> 13));
  }
  // |f| < 2^-14: an fp16 subnormal m * 2^-24 (or zero). At or below 2^-25 (a tie with zero, which
  // is even) everything rounds to zero; fp32 subnormals are far below that.
  if (ax <= 0x33000000u) return sign;
  const uint32_t e = ax >> 23;                         // 102..112
  const uint32_t mant = (ax & 0x7fffffu) | 0x800000u;  // with the implicit 1
  const uint32_t shift = 126u - e;                     // 14..24
  uint32_t m = mant >> shift;
  const uint32_t rem = mant & ((1u << shift) - 1u);
  const uint32_t half = 1u << (shift - 1u);
  if (rem > half || (rem == half && (m & 1u))) ++m;  // may carry into 0x400, the smallest normal
  return static_cast<uint16_t>(sign | m);
}

inline float bf16_to_fp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// Same rule as ggml_compute_fp32_to_bf16 and gguf-py's BF16.quantize_blocks.
inline uint16_t fp32_to_bf16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

// Rows. Bit-identical to the scalar functions above; fp16 rows use F16C (vcvtph2ps /
// vcvtps2ph) when the CPU has it, chosen at run time (the build targets plain x86-64).
void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n);
void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n);
void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n);

// The scalar loops the rows fall back on (tests compare the two paths).
void fp16_to_fp32_row_scalar(const uint16_t* src, float* dst, int64_t n);
void fp32_to_fp16_row_scalar(const float* src, uint16_t* dst, int64_t n);
// True when the rows above take the F16C path on this CPU.
bool fp16_rows_use_f16c();

}  // namespace longctx::quant
