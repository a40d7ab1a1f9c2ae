// Quantized linear layers (kernels/qmatmul.h): the driver (activation quantization, tiling,
// threads), the CPU check that picks a path, and the scalar path. The SIMD paths are in
// cpu/qmatmul_avx2.cc and cpu/qmatmul_avx512.cc. The integer dot-product scheme is the one of
// ggml-cpu's vec_dot_q*_q8_* (x quantized to 8 bits per block of 32, each block product an
// integer scaled by the two blocks' scales); the code is our own.
#include "kernels/qmatmul.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "core/check.h"
#include "kernels/cpu/qmatmul_internal.h"
#include "kernels/matmul.h"
#include "quant/formats.h"
#include "quant/fp16.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define LONGCTX_QMM_X86 1
#else
#define LONGCTX_QMM_X86 0
#endif

// The activation rounding below (x * id, then + 1.5 * 2^23) must stay two roundings; a build with
// FMA enabled would otherwise be free to fuse them.
#if defined(__FMA__)
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#endif

namespace longctx::kernels {
namespace {

using qmm::kBlock;
using qmm::Tile;
using qmm::TileFn;
using qmm::XRows;

// ---- CPU features (CPUID + XGETBV; clang 14 lacks __builtin_cpu_supports("f16c")) ----------

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA + F16C, YMM state saved by the OS
  bool avx512 = false;  // AVX-512 F/BW/DQ/VL + VNNI, ZMM and mask state saved by the OS
  bool amx = false;     // avx512 + AMX-TILE + AMX-INT8, tile state enabled and granted to the process
};

CpuFeatures detect_cpu() {
  CpuFeatures f;
#if LONGCTX_QMM_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  // Leaf 1 ECX: 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C.
  const bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
  if (!(osxsave && avx && fma && f16c)) return f;
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  const bool ymm = (lo & 0x6) == 0x6;    // XCR0: SSE, AVX state
  const bool zmm = (lo & 0xE6) == 0xE6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm || __get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  // Leaf 7 EBX: 5 AVX2, 16 AVX512F, 17 AVX512DQ, 30 AVX512BW, 31 AVX512VL; ECX: 11 AVX512_VNNI.
  f.avx2 = (b >> 5) & 1;
  const bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1;
  const bool vnni = (c >> 11) & 1;
  f.avx512 = f.avx2 && zmm && f512 && dq && bw && vl && vnni;
  // Leaf 7 EDX: 24 AMX-TILE, 25 AMX-INT8; XCR0 17, 18: tile config and data state. Linux hands
  // the tile data state to a process only when asked (ARCH_REQ_XCOMP_PERM = 0x1023, feature 18);
  // without it the first tile instruction faults.
  const bool amx_cpu = ((d >> 24) & 1) && ((d >> 25) & 1) && (lo & 0x60000) == 0x60000;
  // LONGCTX_NO_AMX=1 keeps the AVX-512 VNNI tiles (A/B measurements; same results).
  const char* no_amx = std::getenv("LONGCTX_NO_AMX");
  const bool amx_wanted = !(no_amx && *no_amx && std::strcmp(no_amx, "0") != 0);
#if defined(__linux__)
  f.amx = f.avx512 && amx_cpu && amx_wanted && syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
  f.amx = false;
  (void)amx_cpu;
  (void)amx_wanted;
#endif
#endif
  return f;
}

const CpuFeatures& cpu() {
  static const CpuFeatures f = detect_cpu();
  return f;
}

// ---- activations ----------------------------------------------------------------------------

// round-half-to-even(v) for |v| <= 2^22: adding 1.5 * 2^23 leaves an ulp of 1, so the sum is
// rounded to an integer (ties to even), which sits in the low mantissa bits. Exact, branch-free,
// no libm call, and defined for any input (a NaN gives some value that the clamp bounds).
inline int32_t round_even(float v) {
  const float r = v + 12582912.0f;
  return static_cast<int32_t>(std::bit_cast<uint32_t>(r) & 0x7fffffu) - 0x400000;
}

}  // namespace

// The reference quantizer (qmatmul.h's formula); the SIMD ones must write the same q, d and s.
void qmm::quantize_x_scalar(const float* x, int64_t in, uint8_t* row) {
  const qmm::XRowPtrs o(row, in);
  for (int64_t b = 0; b < in / kBlock; ++b) {
    const float* xb = x + b * kBlock;
    float amax = 0.0f;
    for (int j = 0; j < kBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    int8_t* q = o.qs + b * kBlock;
    int32_t sum = 0;
    for (int j = 0; j < kBlock; ++j) {
      q[j] = static_cast<int8_t>(std::clamp(round_even(xb[j] * id), -127, 127));
      sum += q[j];
    }
    o.d[b] = d;
    o.s[b] = d * static_cast<float>(sum);
  }
}

namespace {

// ---- scalar path ----------------------------------------------------------------------------

inline float load_fp16(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return quant::fp16_to_fp32(h);
}

// Sum over blocks of dw * (dx * isum) (+ m * s for Q4_1), in block order; the SIMD paths do the
// same per lane.
template <uint32_t T>
float dot_q_scalar(const uint8_t* w, const XRows& x, int64_t i, int64_t nb) {
  const qmm::XRowPtrs xr = x.row(i);
  const int8_t* xq = xr.qs;
  const float* xd = xr.d;
  const float* xs = xr.s;
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b, xq += kBlock) {
    int32_t isum = 0;
    if constexpr (T == kQ8_0) {
      const uint8_t* p = w + b * sizeof(quant::BlockQ8_0);
      for (int j = 0; j < kBlock; ++j) isum += static_cast<int8_t>(p[2 + j]) * xq[j];
      acc += load_fp16(p) * (xd[b] * static_cast<float>(isum));
    } else {
      constexpr int64_t BB = T == kQ4_0 ? sizeof(quant::BlockQ4_0) : sizeof(quant::BlockQ4_1);
      constexpr int off = T == kQ4_0 ? 2 : 4, bias = T == kQ4_0 ? 8 : 0;
      const uint8_t* p = w + b * BB;
      for (int j = 0; j < kBlock / 2; ++j) {
        isum += ((p[off + j] & 0x0F) - bias) * xq[j];
        isum += ((p[off + j] >> 4) - bias) * xq[j + kBlock / 2];
      }
      acc += load_fp16(p) * (xd[b] * static_cast<float>(isum));
      if constexpr (T == kQ4_1) acc += load_fp16(p + 2) * xs[b];
    }
  }
  return acc;
}

template <uint32_t T>
void tile_q_scalar(const Tile& t) {
  const int64_t nb = t.cols / kBlock;
  for (int i = 0; i < t.rx; ++i)
    for (int r = 0; r < t.rw; ++r)
      t.y[i * t.ldy + r] = dot_q_scalar<T>(t.w + r * t.row_bytes, *t.xq, t.i0 + i, nb) + (t.bias ? t.bias[r] : 0.0f);
}

void tile_f16_scalar(const Tile& t) {
  for (int i = 0; i < t.rx; ++i) {
    const float* x = t.xf + (t.i0 + i) * t.cols;
    for (int r = 0; r < t.rw; ++r) {
      const uint8_t* w = t.w + r * t.row_bytes;
      float acc = 0.0f;
      for (int64_t j = 0; j < t.cols; ++j) acc += load_fp16(w + 2 * j) * x[j];
      t.y[i * t.ldy + r] = acc + (t.bias ? t.bias[r] : 0.0f);
    }
  }
}

TileFn scalar_tile(uint32_t type) {
  switch (type) {
    case kQ8_0:
      return &tile_q_scalar<kQ8_0>;
    case kQ4_0:
      return &tile_q_scalar<kQ4_0>;
    case kQ4_1:
      return &tile_q_scalar<kQ4_1>;
    case kF16:
      return &tile_f16_scalar;
    default:
      return nullptr;
  }
}

// ---- driver ---------------------------------------------------------------------------------

constexpr int kRowsX = 4;                      // rows of x per tile in prefill
constexpr int64_t kXBlock = 64;                // rows of x per task in prefill (a multiple of kRowsX)
constexpr int64_t kChunkBytes = 256 << 10;     // bytes of W per prefill task: stays in L2 over its x rows
constexpr int64_t kDecodeRows = 16;            // rows of W per decode task
constexpr int64_t kMinParallelBlocks = 2048;  // below ~2 us of work: one thread (see below)

constexpr int64_t kPanelFloats = int64_t{1} << 20;  // 4 MiB of dequantized W per panel

// The quantized activations live in a buffer of the calling thread, reused across calls.
uint8_t* scratch(int64_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (static_cast<int64_t>(buf.size()) < bytes + 64) buf.resize(static_cast<size_t>(bytes + 64));
  const uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
  return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t{63});
}

// Rows of W per dequantized panel.
int64_t panel_rows(const QMatrix& w) { return std::max<int64_t>(1, std::min(w.rows, kPanelFloats / w.cols)); }
// W's rows [p0, p0 + rows) dequantized to fp32 by all threads into the calling thread's panel
// buffer (panel_rows(w) rows of w.cols floats), which it returns.
float* dequant_panel(ThreadPool& pool, const QMatrix& w, int64_t p0, int64_t rows) {
  thread_local std::vector<float> wf;
  const int64_t in = w.cols;
  if (static_cast<int64_t>(wf.size()) < panel_rows(w) * in) wf.resize(static_cast<size_t>(panel_rows(w) * in));
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);
  float* dst = wf.data();
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      CHECK(quant::dequantize_row(w.type, wdata + (p0 + r) * w.row_bytes, dst + r * in, in).ok());
  });
  return dst;
}

// kDequant: W in panels of rows, each dequantized by all threads, then multiplied by the pool's
// gemm, once per block of x's rows. Every W element is converted once per call; the panel stays
// in L2/L3 for the products. A block's result is that of a call with that block alone.
void dequant_gemm(ThreadPool& pool, const float* x, std::span<const RowBlock> blocks, const QMatrix& w,
                  const float* bias, float* y) {
  const int64_t in = w.cols, out = w.rows;
  const int64_t panel = panel_rows(w);
  for (int64_t p0 = 0; p0 < out; p0 += panel) {
    const int64_t rows = std::min(panel, out - p0);
    const float* dst = dequant_panel(pool, w, p0, rows);
    for (const RowBlock& b : blocks) {
      const float* xb = x + b.row0 * in;
      float* yb = y + b.row0 * out;
      if (bias) {
        pool.parallel_range(b.n, [&](int64_t i0, int64_t i1, int) {
          for (int64_t i = i0; i < i1; ++i) std::copy(bias + p0, bias + p0 + rows, yb + i * out + p0);
        });
      }
      gemm(pool, false, true, b.n, rows, in, 1.0f, xb, in, dst, in, bias ? 1.0f : 0.0f, yb + p0, out);
    }
  }
}

}  // namespace

bool qmatmul_supports(uint32_t type) {
  return type == kQ8_0 || type == kQ4_0 || type == kQ4_1 || type == kF16 || type == kF32;
}

bool qmatmul_path_supported(QPath path) {
  switch (path) {
    case QPath::kAuto:
    case QPath::kScalar:
    case QPath::kDequant:
      return true;
    case QPath::kAvx2:
      return cpu().avx2;
    case QPath::kAvx512Vnni:
      return cpu().avx512;
    case QPath::kAmx:
      return cpu().amx;
  }
  return false;
}

QPath qmatmul_best_path() {
  if (cpu().amx) return QPath::kAmx;
  if (cpu().avx512) return QPath::kAvx512Vnni;
  if (cpu().avx2) return QPath::kAvx2;
  return QPath::kScalar;
}

QPath qmatmul_auto_path(int64_t n) { return n >= kDequantMinRows ? QPath::kDequant : qmatmul_best_path(); }

const char* qmatmul_path_name(QPath path) {
  switch (path) {
    case QPath::kAuto:
      return "auto";
    case QPath::kScalar:
      return "scalar";
    case QPath::kAvx2:
      return "avx2";
    case QPath::kAvx512Vnni:
      return "avx512-vnni";
    case QPath::kAmx:
      return "amx-int8";
    case QPath::kDequant:
      return "dequant-sgemm";
  }
  return "?";
}

void qlinear_backward_dx(ThreadPool& pool, const float* dy, int64_t n, const QMatrix& w, float* dx, bool accumulate) {
  CHECK_MSG(qmatmul_supports(w.type), "qlinear_backward_dx: weight type must be Q8_0, Q4_0, Q4_1, F16 or F32");
  CHECK(n >= 0 && w.rows >= 0 && w.cols > 0 && w.row_bytes >= quant::row_bytes(w.type, w.cols));
  const int64_t in = w.cols, out = w.rows;
  if (n == 0) return;
  if (w.rows == 0) {
    if (!accumulate) std::fill(dx, dx + n * in, 0.0f);
    return;
  }
  if (w.type == kF32) {
    CHECK(w.row_bytes % 4 == 0);
    gemm(pool, false, false, n, in, out, 1.0f, dy, out, static_cast<const float*>(w.data), w.row_bytes / 4,
         accumulate ? 1.0f : 0.0f, dx, in);
    return;
  }
  const int64_t panel = panel_rows(w);
  for (int64_t p0 = 0; p0 < out; p0 += panel) {
    const int64_t rows = std::min(panel, out - p0);
    const float* dst = dequant_panel(pool, w, p0, rows);
    gemm(pool, false, false, n, in, rows, 1.0f, dy + p0, out, dst, in, accumulate || p0 > 0 ? 1.0f : 0.0f, dx, in);
  }
}

void qlinear_forward(ThreadPool& pool, const float* x, int64_t n, const QMatrix& w, const float* bias, float* y,
                     QPath path) {
  CHECK_MSG(qmatmul_supports(w.type), "qlinear_forward: weight type must be Q8_0, Q4_0, Q4_1, F16 or F32");
  CHECK(n >= 0 && w.rows >= 0 && w.cols > 0);
  const int64_t min_row = quant::row_bytes(w.type, w.cols);
  CHECK_MSG(min_row > 0 && w.row_bytes >= min_row, "qlinear_forward: cols not whole blocks, or row_bytes too small");
  if (n == 0 || w.rows == 0) return;
  CHECK(x && y && w.data);
  const int64_t in = w.cols, out = w.rows;

  if (w.type == kF32) {  // fp32 weights: the BLAS product (OpenBLAS is as fast as it gets)
    CHECK(w.row_bytes % 4 == 0);
    if (bias) {
      pool.parallel_range(n, [&](int64_t r0, int64_t r1, int) {
        for (int64_t r = r0; r < r1; ++r) std::copy(bias, bias + out, y + r * out);
      });
    }
    gemm(pool, false, true, n, out, in, 1.0f, x, in, static_cast<const float*>(w.data), w.row_bytes / 4,
         bias ? 1.0f : 0.0f, y, out);
    return;
  }

  if (path == QPath::kAuto) path = qmatmul_auto_path(n);
  CHECK_MSG(qmatmul_path_supported(path), "qlinear_forward: this CPU lacks the forced path");
  if (path == QPath::kDequant) {
    const RowBlock all{0, n};
    return dequant_gemm(pool, x, {&all, 1}, w, bias, y);
  }

  // AMX: tiles for several rows of Q4_0 / Q4_1 / Q8_0; everything else on the AVX-512 VNNI
  // tiles, whose results the AMX ones equal bit for bit. The VNNI tiles work in whole groups of
  // 16 blocks: when the padding to a whole group costs them little (in 1536: none), they stay
  // ahead up to 5 rows of x; otherwise (in 576: 18 blocks padded to 32), or with W packed ahead,
  // AMX is ahead from 2 rows (measured on SmolLM2's shapes, docs/BENCHMARKS.md).
  const int64_t nb = in / kBlock;
  const int64_t amx_min_rows = w.packed || qmm::padded_blocks(in) * 4 > nb * 5 ? 2 : 6;
  const bool amx = path == QPath::kAmx && n >= amx_min_rows && qmm::amx_supports(w.type);
  if (path == QPath::kAmx) path = QPath::kAvx512Vnni;

  // Quantize x (Q types); F16 reads the fp32 rows directly.
  XRows xr;
  if (w.type != kF16) {
    xr.in = in;
    xr.stride = XRows::row_stride(in);
    xr.base = scratch(n * xr.stride);
    auto quantize_rows = [&](int64_t i0, int64_t i1, int) {
      for (int64_t i = i0; i < i1; ++i) {
        uint8_t* row = xr.base + i * xr.stride;
        if (path == QPath::kAvx512Vnni)
          qmm::quantize_x_avx512(x + i * in, in, w.type, row, amx);
        else if (path == QPath::kAvx2)
          qmm::quantize_x_avx2(x + i * in, in, w.type, row);
        else
          qmm::quantize_x_scalar(x + i * in, in, row);
      }
    };
    if (n * in >= (int64_t{1} << 16))
      pool.parallel_range(n, quantize_rows);
    else
      quantize_rows(0, n, 0);
  }

  if (amx) {
    const qmm::AmxCall call{w, &xr, n, y, out, bias};
    const int64_t strips = (out + qmm::kAmxStrip - 1) / qmm::kAmxStrip;
    if (pool.threads() == 1 || n * out * (in / kBlock) < kMinParallelBlocks)
      qmm::amx_strips(call, 0, strips);
    else
      pool.parallel_range(strips, [&](int64_t s0, int64_t s1, int) { qmm::amx_strips(call, s0, s1); });
    return;
  }

  // Tile shapes and the functions for them. rw_main: W rows per tile. Decode: 4 (independent
  // accumulators hide the FMA latency). Prefill: 4 rows of x against 1 row of W, whose blocks
  // stay in registers across the 4 (2 rows for AVX-512 Q8_0, whose tile has registers to spare).
  const int rx_main = static_cast<int>(std::min<int64_t>(kRowsX, n));
  const int rw_main = n == 1 ? 4 : path == QPath::kAvx512Vnni && w.type == kQ8_0 ? 2 : 1;
  TileFn fns[5][5] = {};  // [rw][rx]
  for (int rx = 1; rx <= 4; ++rx) {
    for (int rw : {1, 2, 4}) {
      if (rw == 4 && rx > 1) continue;
      switch (path) {
        case QPath::kAvx512Vnni:
          fns[rw][rx] = qmm::avx512_tile(w.type, rw, rx);
          break;
        case QPath::kAvx2:
          fns[rw][rx] = qmm::avx2_tile(w.type, rw, rx);
          break;
        default:
          fns[rw][rx] = scalar_tile(w.type);
          break;
      }
      CHECK(fns[rw][rx] != nullptr);
    }
  }

  // Tasks: chunks of W's rows x blocks of x's rows, W-chunk major, so that the consecutive tasks
  // one thread gets share a W chunk.
  const int T = pool.threads();
  const int64_t xblock = n == 1 ? 1 : kXBlock;
  const int64_t nxb = (n + xblock - 1) / xblock;
  int64_t chunk;
  if (n == 1) {
    chunk = kDecodeRows;
  } else {
    chunk = std::max<int64_t>(rw_main, kChunkBytes / w.row_bytes / rw_main * rw_main);
    // At least ~4 tasks per thread, for balance when x has few rows.
    const int64_t want_chunks = (4 * T + nxb - 1) / nxb;
    const int64_t even = (out + want_chunks - 1) / want_chunks;
    chunk = std::min(chunk, std::max<int64_t>(rw_main, (even + rw_main - 1) / rw_main * rw_main));
  }
  const int64_t nwc = (out + chunk - 1) / chunk;
  const uint8_t* wdata = static_cast<const uint8_t*>(w.data);

  auto run_task = [&](int64_t task, int) {
    const int64_t r0 = task / nxb * chunk, r1 = std::min(out, r0 + chunk);
    const int64_t i0 = task % nxb * xblock, i1 = std::min(n, i0 + xblock);
    Tile t;
    t.row_bytes = w.row_bytes;
    t.cols = in;
    t.xq = &xr;
    t.xf = x;
    t.ldy = out;
    for (int64_t i = i0; i < i1; i += rx_main) {
      t.rx = static_cast<int>(std::min<int64_t>(rx_main, i1 - i));
      t.i0 = i;
      for (int64_t r = r0; r < r1; r += t.rw) {
        const int64_t left = r1 - r;
        t.rw = left >= rw_main ? rw_main : left >= 2 && rw_main > 1 ? 2 : 1;
        t.w = wdata + r * w.row_bytes;
        t.y = y + i * out + r;
        t.bias = bias ? bias + r : nullptr;
        fns[t.rw][t.rx](t);
      }
    }
  };
  // Small products (decode's attention projections at model_dim 576) take about as long as
  // waking the pool's sleeping workers (4 to 30 us measured on a 2-vCPU VM): one thread.
  if (T == 1 || n * out * ((in + kBlock - 1) / kBlock) < kMinParallelBlocks) {
    for (int64_t task = 0; task < nwc * nxb; ++task) run_task(task, 0);
  } else {
    pool.parallel_for(nwc * nxb, run_task);
  }
}

int64_t qmatmul_packed_bytes(const QMatrix& w) {
  if (!cpu().amx || !qmm::amx_supports(w.type) || w.rows <= 0 || w.cols % kBlock != 0) return 0;
  const int64_t strips = (w.rows + qmm::kAmxStrip - 1) / qmm::kAmxStrip;
  return strips * (w.cols / kBlock) * qmm::packed_block_bytes(w.type);
}

void qmatmul_pack(ThreadPool& pool, const QMatrix& w, uint8_t* out) {
  CHECK_MSG(qmatmul_packed_bytes(w) > 0, "qmatmul_pack: W is not Q4_0 / Q4_1 / Q8_0, or this CPU lacks AMX");
  CHECK(w.data && out && reinterpret_cast<uintptr_t>(out) % 64 == 0 && w.row_bytes >= quant::row_bytes(w.type, w.cols));
  const int64_t strips = (w.rows + qmm::kAmxStrip - 1) / qmm::kAmxStrip;
  pool.parallel_range(strips, [&](int64_t s0, int64_t s1, int) { qmm::amx_pack_strips(w, s0, s1, out); });
}

void qlinear_forward_blocks(ThreadPool& pool, const float* x, std::span<const RowBlock> blocks, const QMatrix& w,
                            const float* bias, float* y) {
  CHECK_MSG(qmatmul_supports(w.type) && w.type != kF32, "qlinear_forward_blocks: W must be Q8_0, Q4_0, Q4_1 or F16");
  CHECK(w.cols > 0 && w.row_bytes >= quant::row_bytes(w.type, w.cols) && x && y && w.data);
  if (w.rows == 0) return;
  dequant_gemm(pool, x, blocks, w, bias, y);
}

}  // namespace longctx::kernels
