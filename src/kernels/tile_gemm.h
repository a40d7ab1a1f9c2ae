// fp32 products of attention-tile shapes (a few hundred rows and columns, an inner dimension of
// head_dim or one key tile) on AVX-512 registers, on the calling thread, without packing A.
//
// OpenBLAS packs both operands on every call; for a 256 x 256 x 64 score tile that packing is
// about a sixth of the product's time, and the attention engine makes thousands of such calls.
// Here the micro-kernel keeps a 6 x 64 block of C in 24 registers and reads A's elements in place
// (broadcast from wherever op(A) puts them: A or A^T at any stride), and B's rows in place when
// B is [K, N]; only a transposed B (the score tile's K^T) is copied once per call into a
// thread-local [K, 64] panels (one per 64 columns).
#pragma once
#include <cstdint>

namespace longctx::kernels {

// True where the CPU has AVX-512F (and LONGCTX_NO_TILE_KERNELS is unset): tile_gemm_serial runs.
bool tile_gemm_supported();

// C[M, N] = alpha * op(A) op(B) + beta * C with gemm_serial's arguments (row-major; beta 0 never
// reads C). Requires tile_gemm_supported(). Sums run over k in order, in fp32.
void tile_gemm_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace longctx::kernels
