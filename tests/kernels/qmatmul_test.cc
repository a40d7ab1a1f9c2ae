// kernels/qmatmul.h: every path (scalar, AVX2, AVX-512 VNNI, AMX; forced, skipped where this CPU
// lacks one) and weight type against
//   1. its scalar twin: W dequantized with quant::dequantize_row, x quantized here in plain C++
//      by the rule of qmatmul.h (with std::nearbyint, not the kernel's rounding trick), summed in
//      double: equal to ~1e-5 of sum |w x|;
//   2. plain fp32 x W^T: within the bound of the activation rounding, sum_j |w_j| d_b / 2;
// plus determinism across thread counts and tilings (the AMX tiles' rows bit-identical to the
// VNNI path's one-row products), padded rows, and edge values.
#include "kernels/qmatmul.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "quant/formats.h"
#include "quant/fp16.h"

namespace longctx::kernels {
namespace {

std::vector<float> randv(int64_t n, uint64_t seed, double scale = 1.0) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(r.normal() * scale);
  return v;
}

const QPath kPaths[] = {QPath::kScalar, QPath::kAvx2, QPath::kAvx512Vnni, QPath::kAmx};
const uint32_t kTypes[] = {kQ8_0, kQ4_0, kQ4_1, kF16};

// A weight matrix in `type` with row_bytes = pad + the packed row, and its dequantized values.
struct Weights {
  uint32_t type;
  int64_t rows, cols, row_bytes;
  std::vector<uint8_t> bytes;
  std::vector<float> deq;  // [rows, cols]
  QMatrix view() const { return QMatrix{type, rows, cols, bytes.data(), row_bytes}; }
};

Weights make_weights(uint32_t type, int64_t rows, int64_t cols, uint64_t seed, int64_t pad = 0) {
  Weights w{type, rows, cols, quant::row_bytes(type, cols) + pad, {}, {}};
  const auto f = randv(rows * cols, seed, 0.05);
  w.bytes.assign(static_cast<size_t>(rows * w.row_bytes), 0xA5);  // padding holds junk
  w.deq.resize(f.size());
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* row = w.bytes.data() + r * w.row_bytes;
    EXPECT_TRUE(quant::quantize_row(type, f.data() + r * cols, row, cols).ok());
    EXPECT_TRUE(quant::dequantize_row(type, row, w.deq.data() + r * cols, cols).ok());
  }
  return w;
}

// The activation rule of qmatmul.h, written independently of the kernel.
struct QuantizedX {
  std::vector<double> xq;   // d_b * q_j, exact in double
  std::vector<double> err;  // d_b / 2: the rounding bound of each element
};

QuantizedX quantize_x_twin(const std::vector<float>& x, int64_t n, int64_t in) {
  QuantizedX out{std::vector<double>(n * in), std::vector<double>(n * in)};
  for (int64_t i = 0; i < n * in; i += 32) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i + j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < 32; ++j) {
      const float v = x[i + j] * id;
      const float q = std::clamp(std::nearbyint(v), -127.0f, 127.0f);  // ties to even
      out.xq[i + j] = static_cast<double>(d) * q;
      out.err[i + j] = 0.5 * d * (1 + 1e-6);
    }
  }
  return out;
}

struct Shape {
  int64_t n, in, out;
};
// Odd n, in = 32 .. 4096 (odd block counts too), out a multiple of nothing.
const Shape kShapes[] = {{1, 32, 1},    {1, 64, 7},    {2, 96, 13},    {3, 576, 37}, {5, 160, 29},
                         {1, 4096, 19}, {9, 1536, 45}, {17, 128, 131}, {4, 32, 5},   {6, 4096, 11},
                         {1, 544, 101}, {70, 96, 9},   {1, 1536, 401}, {33, 576, 37}};  // the last two: large enough to
                                                                                        // be split over threads

void check_against_references(uint32_t type, QPath path, const Shape& s, ThreadPool& pool, bool with_bias,
                              int64_t pad) {
  const std::string what = quant::type_name(type) + " " + qmatmul_path_name(path) + " n=" + std::to_string(s.n) +
                           " in=" + std::to_string(s.in) + " out=" + std::to_string(s.out) +
                           " threads=" + std::to_string(pool.threads());
  const Weights w = make_weights(type, s.out, s.in, 1000 + s.in + s.out, pad);
  const auto x = randv(s.n * s.in, 7 + s.n, 2.0);
  const auto bias = randv(s.out, 99);
  std::vector<float> y(s.n * s.out, NAN);
  qlinear_forward(pool, x.data(), s.n, w.view(), with_bias ? bias.data() : nullptr, y.data(), path);

  const bool quantized = type != kF16;
  const QuantizedX qx = quantized ? quantize_x_twin(x, s.n, s.in) : QuantizedX{};
  int bad = 0;
  for (int64_t i = 0; i < s.n; ++i) {
    for (int64_t r = 0; r < s.out; ++r) {
      double twin = 0, mag = 0, fp32 = 0, bound = 0;
      for (int64_t j = 0; j < s.in; ++j) {
        const double wj = w.deq[r * s.in + j], xj = x[i * s.in + j];
        const double xqj = quantized ? qx.xq[i * s.in + j] : xj;
        twin += wj * xqj;
        mag += std::fabs(wj * xqj);
        fp32 += wj * xj;
        if (quantized) bound += std::fabs(wj) * qx.err[i * s.in + j];
      }
      const double b = with_bias ? bias[r] : 0.0;
      const double got = y[i * s.out + r];
      const double tol = 1e-5 * mag + 1e-6 * std::fabs(b) + 1e-7;
      if (!(std::fabs(got - (twin + b)) <= tol) && bad++ < 5)
        ADD_FAILURE() << what << " twin: y[" << i << "," << r << "] = " << got << " want " << twin + b;
      if (!(std::fabs(got - (fp32 + b)) <= bound + tol) && bad++ < 5)
        ADD_FAILURE() << what << " fp32: y[" << i << "," << r << "] = " << got << " want " << fp32 + b << " +- "
                      << bound + tol;
    }
  }
}

TEST(QMatmul, PathsAndDetection) {
  EXPECT_TRUE(qmatmul_path_supported(QPath::kScalar));
  EXPECT_TRUE(qmatmul_path_supported(qmatmul_best_path()));
  for (uint32_t t : kTypes) EXPECT_TRUE(qmatmul_supports(t));
  EXPECT_TRUE(qmatmul_supports(kF32));
  EXPECT_FALSE(qmatmul_supports(kQ4_K));
  std::printf("qmatmul: best path on this CPU: %s (avx2 %d, avx512-vnni %d, amx %d)\n",
              qmatmul_path_name(qmatmul_best_path()), qmatmul_path_supported(QPath::kAvx2),
              qmatmul_path_supported(QPath::kAvx512Vnni), qmatmul_path_supported(QPath::kAmx));
  // AMX needs the VNNI path: its tiles reproduce that path's arithmetic.
  if (qmatmul_path_supported(QPath::kAmx)) EXPECT_TRUE(qmatmul_path_supported(QPath::kAvx512Vnni));
}

TEST(QMatmul, EveryPathTypeAndShapeMatchesScalarTwinAndFp32) {
  ThreadPool pool1(1), pool3(3);
  for (QPath path : kPaths) {
    if (!qmatmul_path_supported(path)) {
      std::printf("qmatmul: skipping %s (not on this CPU)\n", qmatmul_path_name(path));
      continue;
    }
    for (uint32_t type : kTypes) {
      for (size_t k = 0; k < std::size(kShapes); ++k) {
        ThreadPool& pool = k % 2 ? pool3 : pool1;
        check_against_references(type, path, kShapes[k], pool, /*with_bias=*/k % 3 != 0, /*pad=*/k % 4 == 1 ? 6 : 0);
      }
    }
  }
}

// Every output is computed by one thread in one fixed order: the same bits for any thread count,
// any batch (tiling), and (for the SIMD paths) from the rows of x one at a time. On the AMX path
// the rows one at a time take the VNNI tiles, the batches the AMX ones (13 rows: one tile; 37:
// tiles of 16, 16 and 5; blocks per row 18, 19 and 48: groups of 16 with and without a partial
// one; 203 and 50 rows of W: a partial strip of 16).
TEST(QMatmul, DeterministicAcrossThreadsAndTiling) {
  for (const Shape& s : {Shape{13, 576, 203}, Shape{1, 1536, 401}, Shape{37, 608, 50}, Shape{6, 1536, 203}}) {
    const auto x = randv(s.n * s.in, 5, 1.0);
    const auto bias = randv(s.out, 6);
    for (QPath path : kPaths) {
      if (!qmatmul_path_supported(path)) continue;
      for (uint32_t type : kTypes) {
        const Weights w = make_weights(type, s.out, s.in, 77);
        std::vector<float> ref(s.n * s.out);
        {
          ThreadPool pool(1);
          qlinear_forward(pool, x.data(), s.n, w.view(), bias.data(), ref.data(), path);
        }
        for (int threads : {2, 3, 4}) {
          ThreadPool pool(threads);
          std::vector<float> y(s.n * s.out);
          qlinear_forward(pool, x.data(), s.n, w.view(), bias.data(), y.data(), path);
          EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)))
              << quant::type_name(type) << " " << qmatmul_path_name(path) << " threads=" << threads;
          // Row by row (decode tiles) and in a batch of 3 (partial prefill tiles).
          for (int64_t i = 0; i < s.n; ++i) {
            qlinear_forward(pool, x.data() + i * s.in, 1, w.view(), bias.data(), y.data() + i * s.out, path);
          }
          EXPECT_EQ(0, std::memcmp(y.data(), ref.data(), y.size() * sizeof(float)))
              << quant::type_name(type) << " " << qmatmul_path_name(path) << " row by row";
          if (s.n < 5) continue;
          qlinear_forward(pool, x.data() + 2 * s.in, 3, w.view(), bias.data(), y.data(), path);
          EXPECT_EQ(0, std::memcmp(y.data(), ref.data() + 2 * s.out, 3 * s.out * sizeof(float)))
              << quant::type_name(type) << " " << qmatmul_path_name(path) << " batch of 3";
        }
      }
    }
  }
}

// W packed ahead for the AMX tiles (qmatmul_pack, on a CPU with AMX) gives the bits of the
// unpacked W (row by row on the VNNI tiles, or in batches), within the scalar twin's bound.
// Shapes: partial strips of 16 rows of W, 18, 19 and 48 blocks per row, batches of 3 to 37 rows
// (tiles of 16 rows of x and a rest).
TEST(QMatmul, PackedWeightsKeepTheirResults) {
  const Shape shapes[] = {{13, 576, 203}, {37, 608, 50}, {8, 1536, 33}, {3, 576, 16}};
  for (uint32_t type : {kQ4_0, kQ4_1, kQ8_0}) {
    for (const Shape& s : shapes) {
      Weights w = make_weights(type, s.out, s.in, 900 + s.out);
      const int64_t bytes = qmatmul_packed_bytes(w.view());
      if (bytes == 0) {
        std::printf("qmatmul: no packed form here (%s)\n", quant::type_name(type).c_str());
        continue;
      }
      std::vector<uint8_t> buf(static_cast<size_t>(bytes + 64));
      uint8_t* packed = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buf.data()) + 63) & ~uintptr_t{63});
      ThreadPool pool(2);
      qmatmul_pack(pool, w.view(), packed);
      QMatrix pw = w.view();
      pw.packed = packed;
      const auto x = randv(s.n * s.in, 40 + s.n, 1.5);
      const auto bias = randv(s.out, 41);
      const std::string what = quant::type_name(type) + " n=" + std::to_string(s.n) + " in=" + std::to_string(s.in);
      std::vector<float> batch(s.n * s.out), rows(s.n * s.out), plain(s.n * s.out);
      qlinear_forward(pool, x.data(), s.n, pw, bias.data(), batch.data(), QPath::kAmx);
      for (int64_t i = 0; i < s.n; ++i)
        qlinear_forward(pool, x.data() + i * s.in, 1, pw, bias.data(), rows.data() + i * s.out);
      EXPECT_EQ(0, std::memcmp(batch.data(), rows.data(), batch.size() * sizeof(float))) << what << " batch vs rows";
      for (int64_t i = 0; i < s.n; ++i)
        qlinear_forward(pool, x.data() + i * s.in, 1, w.view(), bias.data(), plain.data() + i * s.out,
                        QPath::kAvx512Vnni);
      EXPECT_EQ(0, std::memcmp(batch.data(), plain.data(), batch.size() * sizeof(float))) << what << " vs unpacked";
      const QuantizedX qx = quantize_x_twin(x, s.n, s.in);
      int bad = 0;
      for (int64_t i = 0; i < s.n; ++i) {
        for (int64_t r = 0; r < s.out; ++r) {
          double twin = bias[r], mag = 0;
          for (int64_t j = 0; j < s.in; ++j) {
            twin += w.deq[r * s.in + j] * qx.xq[i * s.in + j];
            mag += std::fabs(w.deq[r * s.in + j] * qx.xq[i * s.in + j]);
          }
          if (!(std::fabs(batch[i * s.out + r] - twin) <= 1e-5 * mag + 1e-6 * std::fabs(bias[r]) + 1e-7) && bad++ < 5)
            ADD_FAILURE() << what << " y[" << i << "," << r << "] = " << batch[i * s.out + r] << " want " << twin;
        }
      }
    }
  }
}

// Activation rounding is to nearest, ties to even: with amax = 127 the scale is exactly 1, so
// x = 2.5 must become 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0. W is the identity (Q8_0, w = 127 * d
// with d = fp16(1/127)), so y[r] = w * q_r.
TEST(QMatmul, ActivationRoundingIsNearestEven) {
  const int64_t in = 32;
  std::vector<float> eye(in * in, 0.0f);
  for (int64_t r = 0; r < in; ++r) eye[r * in + r] = 1.0f;
  std::vector<uint8_t> wq(in * sizeof(quant::BlockQ8_0));
  ASSERT_TRUE(quant::quantize_row(kQ8_0, eye.data(), wq.data(), in * in).ok());
  const float wdiag = 127.0f * quant::fp16_to_fp32(quant::fp32_to_fp16(1.0f / 127.0f));
  std::vector<float> x(in, 0.0f), want(in, 0.0f);
  const float vals[][2] = {{127, 127}, {2.5f, 2},   {3.5f, 4},     {-2.5f, -2},  {0.5f, 0},  {1.5f, 2},
                           {-0.5f, 0}, {-1.5f, -2}, {126.5f, 126}, {-127, -127}, {0.49f, 0}, {-3.51f, -4}};
  for (size_t j = 0; j < std::size(vals); ++j) {
    x[j] = vals[j][0];
    want[j] = vals[j][1];
  }
  ThreadPool pool(1);
  for (QPath path : kPaths) {
    if (!qmatmul_path_supported(path)) continue;
    std::vector<float> y(in);
    qlinear_forward(pool, x.data(), 1, QMatrix{kQ8_0, in, in, wq.data(), int64_t(sizeof(quant::BlockQ8_0))},
                    nullptr, y.data(), path);
    for (int64_t r = 0; r < in; ++r) EXPECT_FLOAT_EQ(y[r], wdiag * want[r]) << qmatmul_path_name(path) << " r=" << r;
  }
}

// Each SIMD path quantizes x with its own code; the bytes must equal the scalar path's. With W
// the identity, y[r] = dw * (d_b * 127 q_r) exactly on every path (the other terms are exact
// zeros), so equal bits of y mean equal q and d.
TEST(QMatmul, ActivationQuantizationIsIdenticalOnEveryPath) {
  const int64_t in = 1024, n = 6;
  std::vector<float> eye(in * in, 0.0f);
  for (int64_t r = 0; r < in; ++r) eye[r * in + r] = 1.0f;
  std::vector<uint8_t> wq(in * in / 32 * sizeof(quant::BlockQ8_0));
  ASSERT_TRUE(quant::quantize_row(kQ8_0, eye.data(), wq.data(), in * in).ok());
  const QMatrix w{kQ8_0, in, in, wq.data(), in / 32 * int64_t(sizeof(quant::BlockQ8_0))};
  std::vector<float> x = randv(n * in, 21, 1.0);
  Rng rng(22);
  for (int64_t j = 0; j < in; ++j) {
    x[1 * in + j] *= 1e-30f;                                                             // tiny scales
    x[2 * in + j] *= 1e30f;                                                              // huge ones
    x[3 * in + j] = std::round(x[3 * in + j] * 40) + 0.5f;                               // ties
    x[4 * in + j] = (j / 32) % 3 == 0 ? 0.0f : x[4 * in + j];                            // zero blocks
    x[5 * in + j] = static_cast<float>(rng.uniform() - 0.5) * ((j % 32) ? 1.0f : 1e6f);  // one outlier per block
  }
  for (int64_t j = 0; j < in; j += 32) x[3 * in + j] = 127.0f;  // scale exactly 1, so the .5s stay ties
  ThreadPool pool(2);
  std::vector<float> ref(n * in);
  qlinear_forward(pool, x.data(), n, w, nullptr, ref.data(), QPath::kScalar);
  for (QPath path : {QPath::kAvx2, QPath::kAvx512Vnni, QPath::kAmx}) {
    if (!qmatmul_path_supported(path)) continue;
    std::vector<float> y(n * in);
    qlinear_forward(pool, x.data(), n, w, nullptr, y.data(), path);
    for (int64_t k = 0; k < n * in; ++k) {
      ASSERT_EQ(std::bit_cast<uint32_t>(y[k]), std::bit_cast<uint32_t>(ref[k]))
          << qmatmul_path_name(path) << " row " << k / in << " col " << k % in << ": " << y[k] << " vs " << ref[k];
    }
  }
}

// Extreme bytes a GGUF file may hold: Q8_0 q = -128 and +127, Q4 nibbles 0 and 15, x blocks of
// zeros (scale 0) and of +-amax; the integer paths must stay exact (no int16 saturation, the
// q + 128 offset removed exactly).
TEST(QMatmul, ExtremeValuesStayExact) {
  const int64_t in = 608, out = 9, n = 3;  // 19 blocks: a whole group of 16 and 3 more
  Rng rng(3);
  std::vector<float> x(n * in);
  for (int64_t j = 0; j < n * in; ++j) {
    const int64_t b = j / 32;
    x[j] = b == 1 ? 0.0f : (b % 2 ? -1.0f : 1.0f) * (rng.uniform() < 0.5 ? 3.0f : -3.0f);
  }
  for (uint32_t type : {kQ8_0, kQ4_0, kQ4_1}) {
    Weights w = make_weights(type, out, in, 11);
    const int64_t bb = quant::block_bytes(type), off = type == kQ4_1 ? 4 : 2;
    for (int64_t r = 0; r < out; ++r) {
      for (int64_t b = 0; b < in / 32; ++b) {
        uint8_t* p = w.bytes.data() + r * w.row_bytes + b * bb;
        const uint16_t d = quant::fp32_to_fp16(0.01f * (r + 1));
        std::memcpy(p, &d, 2);
        for (int64_t k = off; k < bb; ++k) p[k] = (r + b + k) % 3 == 0 ? 0x80 : (r + k) % 2 ? 0x7F : 0xFF;
      }
      ASSERT_TRUE(quant::dequantize_row(type, w.bytes.data() + r * w.row_bytes, w.deq.data() + r * in, in).ok());
    }
    const QuantizedX qx = quantize_x_twin(x, n, in);
    for (QPath path : kPaths) {
      if (!qmatmul_path_supported(path)) continue;
      ThreadPool pool(2);
      std::vector<float> y(n * out);
      qlinear_forward(pool, x.data(), n, w.view(), nullptr, y.data(), path);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t r = 0; r < out; ++r) {
          double twin = 0, mag = 0;
          for (int64_t j = 0; j < in; ++j) {
            twin += w.deq[r * in + j] * qx.xq[i * in + j];
            mag += std::fabs(w.deq[r * in + j] * qx.xq[i * in + j]);
          }
          EXPECT_NEAR(y[i * out + r], twin, 1e-6 * mag + 1e-7)
              << quant::type_name(type) << " " << qmatmul_path_name(path) << " y[" << i << "," << r << "]";
        }
      }
    }
  }
}

TEST(QMatmul, F32WeightsUseTheFp32Product) {
  const int64_t n = 5, in = 37, out = 23, ld = 40;  // padded rows: row_bytes = 4 * ld
  const auto x = randv(n * in, 1), wf = randv(out * ld, 2), bias = randv(out, 3);
  ThreadPool pool(2);
  std::vector<float> y(n * out);
  qlinear_forward(pool, x.data(), n, QMatrix{kF32, out, in, wf.data(), 4 * ld}, bias.data(), y.data());
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < out; ++r) {
      double s = bias[r];
      for (int64_t j = 0; j < in; ++j) s += double(wf[r * ld + j]) * x[i * in + j];
      EXPECT_NEAR(y[i * out + r], s, 1e-4) << i << "," << r;
    }
  }
}

// kDequant (and kAuto from 32 rows of x, which takes it): fp32 x times the dequantized W, so the
// reference is the unrounded product in double, within fp32 summation error. Shapes include W
// split into several 4 MiB panels (in 4096 -> 256 rows per panel; in 576 -> 1820 rows).
TEST(QMatmul, DequantPathIsTheFp32ProductOfTheDequantizedWeights) {
  const Shape shapes[] = {{32, 576, 37}, {40, 4096, 401}, {33, 576, 2000}, {1, 64, 7}, {64, 96, 9}};
  ThreadPool pool(2);
  for (uint32_t type : kTypes) {
    for (const Shape& s : shapes) {
      for (QPath path : {QPath::kDequant, QPath::kAuto}) {
        if (path == QPath::kAuto && s.n < 32) continue;
        const Weights w = make_weights(type, s.out, s.in, 500 + s.out, 8);
        const auto x = randv(s.n * s.in, 3 + s.n, 2.0);
        const auto bias = randv(s.out, 4);
        std::vector<float> y(s.n * s.out, NAN);
        qlinear_forward(pool, x.data(), s.n, w.view(), bias.data(), y.data(), path);
        int bad = 0;
        for (int64_t i = 0; i < s.n; ++i) {
          for (int64_t r = 0; r < s.out; ++r) {
            double want = bias[r], mag = std::fabs(bias[r]);
            for (int64_t j = 0; j < s.in; ++j) {
              want += double(w.deq[r * s.in + j]) * x[i * s.in + j];
              mag += std::fabs(double(w.deq[r * s.in + j]) * x[i * s.in + j]);
            }
            if (!(std::fabs(y[i * s.out + r] - want) <= 1e-5 * mag) && bad++ < 5)
              ADD_FAILURE() << quant::type_name(type) << " " << qmatmul_path_name(path) << " n=" << s.n
                            << " out=" << s.out << ": y[" << i << "," << r << "] = " << y[i * s.out + r] << " want "
                            << want;
          }
        }
      }
    }
  }
}

// Backward through a matrix kept in its file type: dx (+)= dy W, W's dequantized values, against
// a double-precision sum; panels of W (the 2000-row, 4096-column case takes several), padded
// rows, F32 weights, accumulating and overwriting.
TEST(QMatmul, BackwardDxIsTheProductWithTheDequantizedWeights) {
  const Shape shapes[] = {{32, 576, 37}, {3, 4096, 401}, {5, 576, 2000}, {1, 64, 7}};
  ThreadPool pool(2);
  for (uint32_t type : {kQ8_0, kQ4_0, kQ4_1, kF16, kF32}) {
    for (const Shape& s : shapes) {
      for (bool accumulate : {false, true}) {
        const int64_t pad = type == kF32 ? 16 : 8;
        Weights w = type == kF32 ? Weights{kF32, s.out, s.in, s.in * 4 + pad, {}, {}} : make_weights(type, s.out, s.in, 700 + s.out, pad);
        if (type == kF32) {
          w.deq = randv(s.out * s.in, 9, 0.05);
          w.bytes.assign(static_cast<size_t>(s.out * w.row_bytes), 0);
          for (int64_t r = 0; r < s.out; ++r) std::memcpy(w.bytes.data() + r * w.row_bytes, w.deq.data() + r * s.in, s.in * 4);
        }
        const auto dy = randv(s.n * s.out, 5 + s.n, 1.0);
        const auto init = randv(s.n * s.in, 6, 1.0);
        std::vector<float> dx = init;
        qlinear_backward_dx(pool, dy.data(), s.n, w.view(), dx.data(), accumulate);
        int bad = 0;
        for (int64_t i = 0; i < s.n; ++i) {
          for (int64_t j = 0; j < s.in; ++j) {
            double want = accumulate ? init[i * s.in + j] : 0.0, mag = std::fabs(want);
            for (int64_t r = 0; r < s.out; ++r) {
              want += double(dy[i * s.out + r]) * w.deq[r * s.in + j];
              mag += std::fabs(double(dy[i * s.out + r]) * w.deq[r * s.in + j]);
            }
            if (!(std::fabs(dx[i * s.in + j] - want) <= 1e-5 * mag) && bad++ < 5)
              ADD_FAILURE() << quant::type_name(type) << " n=" << s.n << " out=" << s.out << " in=" << s.in
                            << (accumulate ? " +=" : " =") << ": dx[" << i << "," << j << "] = " << dx[i * s.in + j]
                            << " want " << want;
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace longctx::kernels
