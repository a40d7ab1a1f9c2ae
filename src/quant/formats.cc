// Rows of GGUF tensor types to and from fp32 (formats.h). Scalar reference code: each block is
// copied into its struct with memcpy (no alignment or aliasing assumptions on the bytes) and
// converted in the order of operations that ggml's reference code and gguf-py share, so every
// float rounding happens at the same place (bit-identical results, tests/quant).
//
// Where ggml's C and gguf-py differ, gguf-py wins:
//   Q4_0 picks the first element of largest magnitude, starting from element 0 (numpy argmax),
//   so a block of -0.0 gets d = +0.0 like gguf-py (ggml starts from max = +0.0, giving -0.0).
// Multiply-adds must not be fused into FMAs (gguf-py rounds after each operation); the baseline
// x86-64 build has no FMA, and a build with FMA enabled turns contraction off below.
#include "quant/formats.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "quant/fp16.h"

#if defined(__FMA__) || defined(__ARM_FEATURE_FMA)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#endif

namespace longctx::quant {
namespace {

constexpr const char* kQuantizeTypes = "F32, F16, BF16, Q8_0, Q4_0, Q4_1";
constexpr const char* kDequantizeTypes = "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K, Q6_K";

template <typename Block>
Block load_block(const uint8_t* p) {
  Block b;
  std::memcpy(&b, p, sizeof b);
  return b;
}

template <typename Block>
void store_block(const Block& b, uint8_t* p) {
  std::memcpy(p, &b, sizeof b);
}

// ---- dequantize: nb blocks from src to dst ----

void dequantize_q8_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ8_0), dst += kQK) {
    const auto b = load_block<BlockQ8_0>(src);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < kQK; ++j) dst[j] = static_cast<float>(b.qs[j]) * d;
  }
}

void dequantize_q4_0(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_0), dst += kQK) {
    const auto b = load_block<BlockQ4_0>(src);
    const float d = fp16_to_fp32(b.d);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>((b.qs[j] & 0x0F) - 8) * d;
      dst[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_1), dst += kQK) {
    const auto b = load_block<BlockQ4_1>(src);
    const float d = fp16_to_fp32(b.d);
    const float m = fp16_to_fp32(b.m);
    for (int j = 0; j < kQK / 2; ++j) {
      dst[j] = static_cast<float>(b.qs[j] & 0x0F) * d + m;
      dst[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
    }
  }
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K super-block (ggml
// get_scale_min_k4): bytes 0..3 hold sc[0..3] in their low 6 bits and the top 2 bits of
// sc[4..7]; bytes 4..7 the same for the mins; bytes 8..11 the low 4 bits of sc[4..7] (low
// nibble) and mn[4..7] (high nibble).
void scale_min_k4(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequantize_q4_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ4_K)) {
    const auto b = load_block<BlockQ4_K>(src);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < kQK_K / 64; ++c, dst += 64) {
      int sc1, mn1, sc2, mn2;
      scale_min_k4(2 * c, b.scales, &sc1, &mn1);
      scale_min_k4(2 * c + 1, b.scales, &sc2, &mn2);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      const float d2 = d * static_cast<float>(sc2), m2 = dmin * static_cast<float>(mn2);
      const uint8_t* q = b.qs + 32 * c;
      for (int l = 0; l < 32; ++l) {
        dst[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
        dst[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
      }
    }
  }
}

void dequantize_q5_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ5_K)) {
    const auto b = load_block<BlockQ5_K>(src);
    const float d = fp16_to_fp32(b.d);
    const float dmin = fp16_to_fp32(b.dmin);
    for (int c = 0; c < kQK_K / 64; ++c, dst += 64) {
      int sc1, mn1, sc2, mn2;
      scale_min_k4(2 * c, b.scales, &sc1, &mn1);
      scale_min_k4(2 * c + 1, b.scales, &sc2, &mn2);
      const float d1 = d * static_cast<float>(sc1), m1 = dmin * static_cast<float>(mn1);
      const float d2 = d * static_cast<float>(sc2), m2 = dmin * static_cast<float>(mn2);
      const uint8_t* q = b.qs + 32 * c;
      const int bit1 = 2 * c, bit2 = 2 * c + 1;  // sub-block j's high bits are bit j of qh[l]
      for (int l = 0; l < 32; ++l) {
        const int q1 = (q[l] & 0x0F) | (((b.qh[l] >> bit1) & 1) << 4);
        const int q2 = (q[l] >> 4) | (((b.qh[l] >> bit2) & 1) << 4);
        dst[l] = d1 * static_cast<float>(q1) - m1;
        dst[l + 32] = d2 * static_cast<float>(q2) - m2;
      }
    }
  }
}

void dequantize_q6_k(const uint8_t* src, float* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += sizeof(BlockQ6_K)) {
    const auto b = load_block<BlockQ6_K>(src);
    const float d = fp16_to_fp32(b.d);
    // Two halves of 128 elements; in half h, element 32k + l (k = 0..3) takes its low 4 bits from
    // ql[64h + 32(k%2) + l] (low nibble for k < 2, high for k >= 2) and its high 2 bits from
    // bits 2k, 2k+1 of qh[32h + l]. Scale: scales[e / 16] for element e of the super-block.
    for (int h = 0; h < 2; ++h, dst += 128) {
      const uint8_t* ql = b.ql + 64 * h;
      const uint8_t* qh = b.qh + 32 * h;
      const int8_t* sc = b.scales + 8 * h;
      for (int k = 0; k < 4; ++k) {
        for (int l = 0; l < 32; ++l) {
          const int lo = (ql[32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
          const int hi = (qh[l] >> (2 * k)) & 3;
          const int q = (lo | (hi << 4)) - 32;
          const float dl = d * static_cast<float>(sc[(32 * k + l) / 16]);
          dst[32 * k + l] = dl * static_cast<float>(q);
        }
      }
    }
  }
}

// ---- quantize: nb blocks from src to dst (ggml quantize_row_*_ref, gguf-py quantize_blocks) ----

// (int)t clamped to [0, 15]; t >= 0 for finite inputs, NaN gives 0 (no undefined cast).
int nibble(float t) {
  if (!(t > 0.0f)) return 0;
  if (t >= 15.0f) return 15;
  return static_cast<int>(t);
}

void quantize_q8_0(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += kQK, dst += sizeof(BlockQ8_0)) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(src[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ8_0 b;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK; ++j) {
      // roundf: half away from zero (gguf-py's np_roundf). |x * id| <= 127 up to one rounding,
      // so q fits; the clamp only keeps a NaN or Inf input from an undefined cast.
      const float q = std::round(src[j] * id);
      b.qs[j] = static_cast<int8_t>(q == q ? static_cast<int>(std::clamp(q, -127.0f, 127.0f)) : 0);
    }
    store_block(b, dst);
  }
}

void quantize_q4_0(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += kQK, dst += sizeof(BlockQ4_0)) {
    // The element of largest magnitude, keeping its sign; the first one on ties.
    float amax = std::fabs(src[0]), max = src[0];
    for (int j = 1; j < kQK; ++j) {
      if (amax < std::fabs(src[j])) {
        amax = std::fabs(src[j]);
        max = src[j];
      }
    }
    const float d = max / -8.0f;  // max maps to -8, the end of [-8, 7] with room for it
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_0 b;
    b.d = fp32_to_fp16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = nibble(src[j] * id + 8.5f);
      const int q1 = nibble(src[j + kQK / 2] * id + 8.5f);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(b, dst);
  }
}

void quantize_q4_1(const float* src, uint8_t* dst, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, src += kQK, dst += sizeof(BlockQ4_1)) {
    float min = src[0], max = src[0];
    for (int j = 1; j < kQK; ++j) {
      if (src[j] < min) min = src[j];
      if (src[j] > max) max = src[j];
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    BlockQ4_1 b;
    b.d = fp32_to_fp16(d);
    b.m = fp32_to_fp16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = nibble((src[j] - min) * id + 0.5f);
      const int q1 = nibble((src[j + kQK / 2] - min) * id + 0.5f);
      b.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
    store_block(b, dst);
  }
}

// Checks that `type` has the direction and that n is whole blocks; returns the block count.
Expected<int64_t> blocks_of(uint32_t type, int64_t n, bool supported, const char* verb, const char* supported_list) {
  if (!supported) {
    return Status::Error(std::string("quant: cannot ") + verb + " " + type_name(type) +
                         " (supported: " + supported_list + ")");
  }
  const int64_t bs = block_size(type);
  if (n < 0 || n % bs != 0) {
    return Status::Error("quant: a row of " + std::to_string(n) + " elements is not a whole number of " +
                         type_name(type) + " blocks of " + std::to_string(bs));
  }
  return n / bs;
}

}  // namespace

int64_t block_size(uint32_t type) {
  const ElementTypeInfo* t = element_type_info(type);
  return t ? t->block_size : 0;
}

int64_t block_bytes(uint32_t type) {
  const ElementTypeInfo* t = element_type_info(type);
  return t ? t->block_bytes : 0;
}

int64_t row_bytes(uint32_t type, int64_t n) { return element_row_bytes(type, n); }

std::string type_name(uint32_t type) { return element_type_name(type); }

bool is_quantized(uint32_t type) { return block_size(type) > 1; }

bool can_dequantize(uint32_t type) {
  switch (type) {
    case kF32:
    case kF16:
    case kBF16:
    case kQ8_0:
    case kQ4_0:
    case kQ4_1:
    case kQ4_K:
    case kQ5_K:
    case kQ6_K:
      return true;
    default:
      return false;
  }
}

bool can_quantize(uint32_t type) {
  switch (type) {
    case kF32:
    case kF16:
    case kBF16:
    case kQ8_0:
    case kQ4_0:
    case kQ4_1:
      return true;
    default:
      return false;
  }
}

Status dequantize_row(uint32_t type, const void* src, float* dst, int64_t n) {
  Expected<int64_t> nb = blocks_of(type, n, can_dequantize(type), "dequantize", kDequantizeTypes);
  if (!nb.ok()) return nb.status();
  const auto* s = static_cast<const uint8_t*>(src);
  switch (type) {
    case kF32:
      if (n > 0) std::memcpy(dst, s, static_cast<size_t>(n) * sizeof(float));
      break;
    case kF16: {
      // The F16C path reads uint16_t lanes; copy through memcpy when src is unaligned.
      if (reinterpret_cast<uintptr_t>(s) % alignof(uint16_t) == 0) {
        fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(s), dst, n);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          uint16_t h;
          std::memcpy(&h, s + 2 * i, 2);
          dst[i] = fp16_to_fp32(h);
        }
      }
      break;
    }
    case kBF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = bf16_to_fp32(h);
      }
      break;
    case kQ8_0:
      dequantize_q8_0(s, dst, *nb);
      break;
    case kQ4_0:
      dequantize_q4_0(s, dst, *nb);
      break;
    case kQ4_1:
      dequantize_q4_1(s, dst, *nb);
      break;
    case kQ4_K:
      dequantize_q4_k(s, dst, *nb);
      break;
    case kQ5_K:
      dequantize_q5_k(s, dst, *nb);
      break;
    case kQ6_K:
      dequantize_q6_k(s, dst, *nb);
      break;
  }
  return Status::Ok();
}

Status quantize_row(uint32_t type, const float* src, void* dst, int64_t n) {
  Expected<int64_t> nb = blocks_of(type, n, can_quantize(type), "quantize to", kQuantizeTypes);
  if (!nb.ok()) return nb.status();
  auto* d = static_cast<uint8_t*>(dst);
  switch (type) {
    case kF32:
      if (n > 0) std::memcpy(d, src, static_cast<size_t>(n) * sizeof(float));
      break;
    case kF16:
      if (reinterpret_cast<uintptr_t>(d) % alignof(uint16_t) == 0) {
        fp32_to_fp16_row(src, reinterpret_cast<uint16_t*>(d), n);
      } else {
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t h = fp32_to_fp16(src[i]);
          std::memcpy(d + 2 * i, &h, 2);
        }
      }
      break;
    case kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = fp32_to_bf16(src[i]);
        std::memcpy(d + 2 * i, &h, 2);
      }
      break;
    case kQ8_0:
      quantize_q8_0(src, d, *nb);
      break;
    case kQ4_0:
      quantize_q4_0(src, d, *nb);
      break;
    case kQ4_1:
      quantize_q4_1(src, d, *nb);
      break;
  }
  return Status::Ok();
}

}  // namespace longctx::quant
