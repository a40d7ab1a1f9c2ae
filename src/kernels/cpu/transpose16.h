// A 16 x 16 transpose of dwords in AVX-512 registers, shared by the kernels that pack operands
// (gemm_bf16.cc, tile_gemm.cc). Inlines into any function whose target includes AVX-512F.
#pragma once
#include <immintrin.h>

namespace longctx::kernels {

// r[i] = row i of a 16 x 16 matrix of dwords -> r[j] = column j: 32-bit then 64-bit interleaves
// inside 128-bit lanes (u[4i + c], lane L: rows 4i .. 4i + 3 of column 4L + c), then two rounds
// of 128-bit lane shuffles (a 4 x 4 transpose of lanes).
__attribute__((target("avx512f"))) inline void transpose16(__m512i* r) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0x88), v1 = _mm512_shuffle_i32x4(u[c], u[4 + c], 0xDD);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0x88), v3 = _mm512_shuffle_i32x4(u[8 + c], u[12 + c], 0xDD);
    r[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[8 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[4 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

}  // namespace longctx::kernels
