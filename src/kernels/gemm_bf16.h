// bf16 matrix products with fp32 accumulation: the operands are rounded to bfloat16 (round to
// nearest even, as quant::fp32_to_bf16), every product of two bf16 values is exact in fp32, and
// the sums are fp32. This is the arithmetic of PyTorch's `autocast("cpu", dtype=torch.bfloat16)`
// matmuls and of mixed-precision training: fp32 in, fp32 out, bf16 only inside the product.
//
// Path: AMX (AMX-TILE + AMX-BF16, tdpbf16ps on 16 x 16 output tiles, 32 elements of K per
// instruction), chosen at run time (CPUID, XGETBV and the OS's grant of the tile state, shared
// with kernels/qmatmul.h; LONGCTX_NO_AMX=1 turns it off). Without it gemm_bf16_supported() is
// false and callers use the fp32 products (kernels/matmul.h).
//
// Error: |C - C_bf16exact| <= ~K * 2^-24 * sum_k |a_k b_k| (fp32 sums of exact products), where
// C_bf16exact is the product of the bf16-rounded operands in exact arithmetic; against the fp32
// product the operands' rounding adds up to 2^-8 relative per element (bf16 keeps 8 bits).
// Each output is computed by one thread in one fixed order: results do not depend on the thread
// count.
#pragma once
#include <cstdint>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"

namespace longctx::kernels {

// Whether this CPU (and OS) runs gemm_bf16.
bool gemm_bf16_supported();

// C[M, N] = alpha * op(A) op(B) + beta * C, as kernels::gemm (row-major; op(A) [M, K]: A [M, K]
// (lda >= K) or with trans_a [K, M]; likewise op(B) [K, N]), in bf16 with fp32 sums. beta == 0
// ignores C's old contents (NaN included). CHECKs gemm_bf16_supported(). Call from outside pool
// tasks.
void gemm_bf16(ThreadPool& pool, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The same product on the calling thread only (for use inside a pool task: attention tiles), its
// packed operands in thread-local buffers. Results equal gemm_bf16's bit for bit.
void gemm_bf16_serial(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// A weight W [n, k] (the linear layer's [out, in]) packed once as gemm_bf16's op(B) = W^T, for
// products that reuse it (inference): bf16_packed_weight_elems(n, k) uint16 values, 64-byte
// aligned. gemm_bf16_packed then skips the packing of W a gemm_bf16 call does; the results are
// bit-identical to gemm_bf16(.., trans_b = true, W, ..).
int64_t bf16_packed_weight_elems(int64_t n, int64_t k);
void bf16_pack_weight(ThreadPool& pool, const float* w, int64_t n, int64_t k, uint16_t* out);
void gemm_bf16_packed(ThreadPool& pool, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const uint16_t* w_packed, float beta, float* C, int64_t ldc);

// Packed copies of read-only fp32 weights, made on first use and kept (a model's inference
// matrices): keyed by the weight's address and shape, so the weights must not change or move
// while the cache lives. Thread-safe.
class Bf16WeightCache {
 public:
  const uint16_t* get(ThreadPool& pool, const float* w, int64_t n, int64_t k);
  int64_t bytes() const;

 private:
  struct Key {
    const float* w;
    int64_t n, k;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>()(k.w) ^ (static_cast<size_t>(k.n) * 0x9E3779B97F4A7C15ULL) ^ static_cast<size_t>(k.k);
    }
  };
  mutable std::mutex mu_;
  std::unordered_map<Key, std::vector<uint16_t>, KeyHash> packed_;  // 64-byte aligned inside
  int64_t bytes_ = 0;
};

// The scalar twin: the same bf16 rounding of the operands, the products summed in double, then
// C = alpha * sum + beta * C in float. Any CPU; for tests.
void gemm_bf16_reference(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                         int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The linear layers of kernels/matmul.h in bf16 (same conventions): forward
// y[rows, out] = x W^T (+ b), and backward dx (+)= dy W, dW += dy^T x, db += column sums of dy
// (db in fp32: a sum, not a product).
// w_packed (optional): w packed by bf16_pack_weight(w, out, in); used instead of packing w.
void linear_forward_bf16(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w, const float* b,
                         int64_t out, float* y, const uint16_t* w_packed = nullptr);
void linear_forward_residual_bf16(ThreadPool& pool, const float* x, int64_t rows, int64_t in, const float* w,
                                  const float* b, int64_t out, const float* residual, float* y,
                                  const uint16_t* w_packed = nullptr);
void linear_backward_bf16(ThreadPool& pool, const float* x, const float* dy, int64_t rows, int64_t in,
                          const float* w, int64_t out, float* dx, bool accumulate_dx, float* dw, float* db);

}  // namespace longctx::kernels
