// Linear layers over GGUF-quantized weights, for inference: y[n, out] = x[n, in] W^T (+ bias),
// W [out, in] row-major in ggml blocks (the PyTorch / GGUF convention, as kernels::linear_forward).
//
// Quantized W (Q8_0, Q4_0, Q4_1): each row of x is quantized to 8 bits in blocks of 32 (the
// "Q8" activations of ggml's vec_dot_q*_q8_*), then every block product is an exact integer dot
// product scaled once per block:
//   x block b:  d_b = amax_b / 127 (fp32, not rounded to fp16), id_b = d_b != 0 ? 1 / d_b : 0,
//               q_j = round-half-to-even(x_j * id_b) clamped to [-127, 127],  s_b = d_b * sum_j q_j
//   Q8_0 / Q4_0 (w_j = dw * c_j, c_j = q or nibble - 8):  y += dw * (d_b * sum_j c_j q_j)
//   Q4_1        (w_j = dw * nibble_j + m):                y += dw * (d_b * sum_j nibble_j q_j) + m * s_b
// s_b is the Q8_1 idea: Q4_1's offset m meets the block sum of x, not each element.
// The error against fp32 x W^T is that of the activation rounding: |x_j - d_b q_j| <= d_b / 2.
// F16 W: fp32 x times W converted to fp32 (no quantization). F32 W: the OpenBLAS product
// (kernels::gemm), whatever the path.
//
// Paths (chosen at run time with CPUID and XGETBV; the build itself is baseline x86-64):
//   kAvx512Vnni  AVX-512 F/BW/DQ/VL + VNNI: vpdpbusd, the weight as the unsigned operand (Q4
//                nibbles as they are, Q8_0 as q + 128, the constant removed exactly through x's
//                sums), 16 blocks at a time, reduced to one exact integer per block in
//                registers, scaled per block (cpu/qmatmul_avx512.cc)
//   kAmx         kAvx512Vnni plus AMX-TILE / AMX-INT8 (and the OS's grant of the tile state):
//                for several rows of x by Q4_0 / Q4_1 / Q8_0 W, tdpbssd on tiles of 16 rows
//                of W by up to 16 rows of x (W packed per call, 16 rows at a time, or once
//                ahead: qmatmul_pack); the fp32 steps repeat the VNNI tile's one by one, so
//                every row of y is bit-identical to the kAvx512Vnni result
//                (cpu/qmatmul_amx.cc). One row of x, and F16, take the kAvx512Vnni tiles
//   kAvx2        AVX2 + FMA + F16C: vpmaddubsw / vpmaddwd (Q8_0 through the sign trick)
//   kScalar      plain C++ (any CPU; the twin the SIMD paths are tested against)
//   kDequant     W dequantized to fp32 in panels of rows (exactly the gguf values), then the
//                OpenBLAS product of fp32 x: no activation rounding. kAuto takes it for prefill
//                (n >= 32 rows of x), where it is faster on a 2-core AVX-512 VM (pp512 of
//                SmolLM2-135M Q4_1: see docs/BENCHMARKS.md) and more accurate; the integer
//                paths serve decode, where W's bytes are the cost.
// All integer paths quantize x identically (bit for bit, finite x), so they differ only in the
// order of the fp32 additions (~1e-6 relative).
//
// Threading: n == 1 (decode) splits W's rows over the pool; n > 1 (prefill) tiles 4 rows of x
// against chunks of W's rows that stay in cache, so each W block is loaded once per 4 rows of x.
// Products under 16384 blocks (~16 us on one core) stay on the calling thread: waking the pool
// costs about as much.
// Every output is computed by one thread with one fixed order of operations: results do not
// depend on the thread count, nor on the tiling.
#pragma once
#include <cstdint>
#include <span>

#include "core/thread_pool.h"

namespace longctx::kernels {

// A weight matrix W [rows = out, cols = in] in one GGUF tensor type (kQ8_0, kQ4_0,
// kQ4_1, kF16 or kF32). Row r starts at data + r * row_bytes (row_bytes >= the bytes of cols
// elements, quant::row_bytes; usually equal). For quantized types cols % 32 == 0.
// The data need no alignment.
struct QMatrix {
  uint32_t type = 0;
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;
  int64_t row_bytes = 0;
  // Optional: W in the AMX path's packed form (qmatmul_pack), which that path otherwise builds
  // on every call, 16 rows at a time. Only what qmatmul_pack wrote for this very W.
  const uint8_t* packed = nullptr;
};

enum class QPath { kAuto, kScalar, kAvx2, kAvx512Vnni, kAmx, kDequant };

// True for the types qlinear_forward takes.
bool qmatmul_supports(uint32_t type);
// Whether this CPU (and OS) can run a path; kAuto and kScalar always can.
bool qmatmul_path_supported(QPath path);
// The path kAuto picks on this CPU (the best supported one), and names for logs.
QPath qmatmul_best_path();
// The path kAuto takes for a product of n rows of x by a quantized W: kDequant from
// kDequantMinRows rows, else qmatmul_best_path().
inline constexpr int64_t kDequantMinRows = 32;
QPath qmatmul_auto_path(int64_t n);
const char* qmatmul_path_name(QPath path);

// The AMX path's packed form of W, built once for products it serves many times (a server's
// batched steps): bytes it takes (0 where kAmx would not use it: another type, or no AMX), and
// the packing into out (64-byte aligned, qmatmul_packed_bytes long), split over the pool. The
// packed form holds W's bytes in another order (as many bytes); results do not change.
int64_t qmatmul_packed_bytes(const QMatrix& w);
void qmatmul_pack(ThreadPool& pool, const QMatrix& w, uint8_t* out);

// Rows [row0, row0 + n) of x and y.
struct RowBlock {
  int64_t row0 = 0, n = 0;
};
// The kDequant product of several blocks of x's rows with W dequantized once (each panel of W
// serves every block): each block's rows of y are exactly those qlinear_forward(.., kDequant)
// of that block alone writes. Quantized or F16 W.
void qlinear_forward_blocks(ThreadPool& pool, const float* x, std::span<const RowBlock> blocks, const QMatrix& w,
                            const float* bias, float* y);

// y[n_rows_x, w.rows] = x[n_rows_x, w.cols] W^T (+ bias[w.rows] on every row; bias may be null).
// y must not overlap x. `path` forces one path (tests, benchmarks); forcing a path this CPU lacks
// is a CHECK failure, like an unsupported type or a malformed QMatrix (the loader validates
// files). Call from outside pool tasks (it runs parallel_range on `pool`).
void qlinear_forward(ThreadPool& pool, const float* x, int64_t n_rows_x, const QMatrix& w, const float* bias, float* y,
                     QPath path = QPath::kAuto);

// Training through a frozen matrix kept in its file type: dx[n, w.cols] (+)= dy[n, w.rows] W,
// W dequantized to fp32 in panels of rows (the kDequant path's values), each panel's share
// added by the OpenBLAS product. Accumulates into dx when `accumulate`, else overwrites it.
void qlinear_backward_dx(ThreadPool& pool, const float* dy, int64_t n, const QMatrix& w, float* dx, bool accumulate);

}  // namespace longctx::kernels
