// Row conversions fp16/bf16 <-> fp32 (see fp16.h). The fp16 rows have an F16C fast path,
// compiled with a target attribute (the build itself is plain x86-64) and picked once at run
// time with __builtin_cpu_supports; the scalar loop is the reference it must match bit for bit.
#include "quant/fp16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define LONGCTX_QUANT_F16C 1
#else
#define LONGCTX_QUANT_F16C 0
#endif

namespace longctx::quant {

void fp16_to_fp32_row_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(src[i]);
}

void fp32_to_fp16_row_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_fp16(src[i]);
}

void bf16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(src[i]);
}

void fp32_to_bf16_row(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = fp32_to_bf16(src[i]);
}

#if LONGCTX_QUANT_F16C
namespace {

// 8 lanes at a time; the tail goes through the scalar code, which rounds identically.
__attribute__((target("avx,f16c"))) void fp16_to_fp32_f16c(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(h));
  }
  fp16_to_fp32_row_scalar(src + i, dst + i, n - i);
}

__attribute__((target("avx,f16c"))) void fp32_to_fp16_f16c(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h);
  }
  fp32_to_fp16_row_scalar(src + i, dst + i, n - i);
}

// CPUID leaf 1: ECX bit 28 AVX, bit 29 F16C, bit 27 OSXSAVE; XCR0 bits 1-2: the OS saves the
// SSE and AVX registers. (clang 14 does not know __builtin_cpu_supports("f16c").)
bool detect_f16c() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool avx = (ecx >> 28) & 1, f16c = (ecx >> 29) & 1, osxsave = (ecx >> 27) & 1;
  if (!(avx && f16c && osxsave)) return false;
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (lo & 6) == 6;
}

}  // namespace

bool fp16_rows_use_f16c() {
  static const bool has = detect_f16c();
  return has;
}

void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) {
  if (fp16_rows_use_f16c()) return fp16_to_fp32_f16c(src, dst, n);
  fp16_to_fp32_row_scalar(src, dst, n);
}

void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) {
  if (fp16_rows_use_f16c()) return fp32_to_fp16_f16c(src, dst, n);
  fp32_to_fp16_row_scalar(src, dst, n);
}

#else

bool fp16_rows_use_f16c() { return false; }
void fp16_to_fp32_row(const uint16_t* src, float* dst, int64_t n) { fp16_to_fp32_row_scalar(src, dst, n); }
void fp32_to_fp16_row(const float* src, uint16_t* dst, int64_t n) { fp32_to_fp16_row_scalar(src, dst, n); }

#endif

}  // namespace longctx::quant
