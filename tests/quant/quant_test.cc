// quant/: fp16/bf16 conversions and the block formats, against gguf-py (golden files from
// tests/quant/make_quant_golden.py), against exhaustive properties, and against the real model
// models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/fetch_model.sh; skipped when missing).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "io/gguf.h"
#include "quant/formats.h"
#include "quant/fp16.h"
#include "quant/golden_quant.h"

namespace longctx::quant {
namespace {

const std::string kGoldenDir = std::string(LONGCTX_SOURCE_DIR) + "/tests/quant/golden/";
const std::string kModel = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

testing::QuantGolden load(const std::string& name) {
  testing::QuantGolden g = testing::read_quant_golden(kGoldenDir + name);
  EXPECT_EQ(g.error, "") << "regenerate with python3 tests/quant/make_quant_golden.py";
  return g;
}

// Index of the first float whose bits differ, or -1.
int64_t first_bit_mismatch(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::bit_cast<uint32_t>(a[i]) != std::bit_cast<uint32_t>(b[i])) return static_cast<int64_t>(i);
  return -1;
}

int64_t first_byte_mismatch(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  if (a.size() != b.size()) return 0;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i);
  return -1;
}

struct Named {
  const char* name;
  uint32_t type;
};
constexpr Named kQuantizable[] = {{"F16", kF16}, {"BF16", kBF16}, {"Q8_0", kQ8_0}, {"Q4_0", kQ4_0}, {"Q4_1", kQ4_1}};

// The ids themselves are checked against ggml's in tests/core/element_type_test.cc; here, that the
// block structs agree with the table the codecs size rows by.
TEST(QuantTypes, IdsSizesAndNamesComeFromGgml) {
  const struct {
    uint32_t type;
    int64_t block, bytes;
    const char* name;
  } cases[] = {{kF32, 1, 4, "F32"},
               {kF16, 1, 2, "F16"},
               {kBF16, 1, 2, "BF16"},
               {kQ8_0, 32, sizeof(BlockQ8_0), "Q8_0"},
               {kQ4_0, 32, sizeof(BlockQ4_0), "Q4_0"},
               {kQ4_1, 32, sizeof(BlockQ4_1), "Q4_1"},
               {kQ4_K, 256, sizeof(BlockQ4_K), "Q4_K"},
               {kQ5_K, 256, sizeof(BlockQ5_K), "Q5_K"},
               {kQ6_K, 256, sizeof(BlockQ6_K), "Q6_K"}};
  for (const auto& c : cases) {
    EXPECT_EQ(block_size(c.type), c.block) << c.name;
    EXPECT_EQ(block_bytes(c.type), c.bytes) << c.name;
    EXPECT_EQ(type_name(c.type), c.name);
    EXPECT_EQ(row_bytes(c.type, 4 * c.block), 4 * c.bytes) << c.name;
    EXPECT_EQ(is_quantized(c.type), c.block > 1) << c.name;
    EXPECT_TRUE(can_dequantize(c.type)) << c.name;
  }
  EXPECT_EQ(row_bytes(kQ8_0, 33), -1);
  EXPECT_EQ(row_bytes(kQ8_0, -32), -1);
  EXPECT_EQ(row_bytes(99, 32), -1);
  EXPECT_EQ(block_size(99), 0);
  EXPECT_EQ(type_name(99), "type 99");
  EXPECT_FALSE(can_quantize(kQ4_K));
  EXPECT_FALSE(can_dequantize(10));  // Q2_K
}

TEST(QuantErrors, UnsupportedTypesAndPartialBlocksAreStatus) {
  std::vector<float> x(256, 1.0f), y(256);
  std::vector<uint8_t> q(1024);
  Status s = quantize_row(kQ4_K, x.data(), q.data(), 256);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot quantize to Q4_K"), std::string::npos) << s.message();
  s = dequantize_row(10, q.data(), y.data(), 256);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cannot dequantize Q2_K"), std::string::npos) << s.message();
  s = dequantize_row(99, q.data(), y.data(), 256);
  EXPECT_NE(s.message().find("type 99"), std::string::npos) << s.message();
  s = quantize_row(kQ8_0, x.data(), q.data(), 48);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("48 elements"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("Q8_0 blocks of 32"), std::string::npos) << s.message();
  EXPECT_FALSE(dequantize_row(kQ6_K, q.data(), y.data(), 128).ok());
  EXPECT_TRUE(quantize_row(kQ8_0, x.data(), q.data(), 0).ok());
}

// ---- fp16 / bf16 ----

TEST(Fp16, EveryHalfRoundTripsAndTheRowPathAgrees) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < 65536; ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f(65536), f_scalar(65536);
  fp16_to_fp32_row(all.data(), f.data(), 65536);
  fp16_to_fp32_row_scalar(all.data(), f_scalar.data(), 65536);
  EXPECT_EQ(first_bit_mismatch(f, f_scalar), -1) << "F16C path: " << fp16_rows_use_f16c();
  std::vector<uint16_t> back(65536), back_scalar(65536);
  fp32_to_fp16_row(f.data(), back.data(), 65536);
  fp32_to_fp16_row_scalar(f.data(), back_scalar.data(), 65536);
  for (uint32_t i = 0; i < 65536; ++i) {
    const bool nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff) != 0;
    ASSERT_EQ(back[i], back_scalar[i]) << std::hex << i;
    if (nan) {
      ASSERT_TRUE(std::isnan(f[i])) << std::hex << i;
      ASSERT_EQ(std::signbit(f[i]), (i & 0x8000) != 0);
      ASSERT_EQ(back[i], i | 0x200) << std::hex << i;  // quieted, payload kept
    } else {
      ASSERT_EQ(back[i], i) << std::hex << i;
    }
  }
  EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
  EXPECT_EQ(fp16_to_fp32(0x0001), 0x1p-24f);
  EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
  EXPECT_EQ(fp16_to_fp32(0xfc00), -INFINITY);
  EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(0x8000)), 0x80000000u);
}

// Value of an fp16 magnitude as a double, with 0x7c00 (Inf) read as 65536 for rounding purposes.
double half_mag(uint32_t m) {
  return m >= 0x7c00 ? 65536.0 : static_cast<double>(fp16_to_fp32(static_cast<uint16_t>(m)));
}

// fp32 -> fp16 is the nearest fp16, ties to even, over a spread of 16.7M fp32 bit patterns (a
// stride through all 2^32), and the F16C row path gives the same bits.
TEST(Fp16, Fp32ToFp16IsNearestEvenEverywhere) {
  constexpr uint64_t kStride = 257;
  std::vector<float> xs;
  xs.reserve((1ull << 32) / kStride + 1);
  for (uint64_t u = 0; u < (1ull << 32); u += kStride) xs.push_back(std::bit_cast<float>(static_cast<uint32_t>(u)));
  std::vector<uint16_t> row(xs.size());
  fp32_to_fp16_row(xs.data(), row.data(), static_cast<int64_t>(xs.size()));
  int bad = 0;
  auto fail = [&](float x, const char* why) {
    ADD_FAILURE() << std::hexfloat << x << " -> 0x" << std::hex << fp32_to_fp16(x) << ": " << why;
    ++bad;
  };
  for (size_t i = 0; i < xs.size() && bad < 5; ++i) {
    const float x = xs[i];
    const uint16_t h = fp32_to_fp16(x);
    if (row[i] != h) {
      fail(x, "the row path differs");
      continue;
    }
    if (std::isnan(x)) {
      if ((h & 0x7c00) != 0x7c00 || (h & 0x3ff) == 0) fail(x, "NaN lost");
      continue;
    }
    if (((h & 0x8000) != 0) != std::signbit(x)) {
      fail(x, "sign");
      continue;
    }
    const double a = std::fabs(static_cast<double>(x));
    const uint32_t m = h & 0x7fff;
    if (m == 0x7c00) {
      if (a < 65520.0) fail(x, "overflowed below 65520");
      continue;
    }
    const double e = std::fabs(a - half_mag(m));
    const double up = std::fabs(half_mag(m + 1) - a);
    const double down = m > 0 ? std::fabs(a - half_mag(m - 1)) : INFINITY;
    const bool nearest = e < up && e < down;
    const bool tie_even = (e == up || e == down) && e <= up && e <= down && (m & 1) == 0;
    if (!nearest && !tie_even) fail(x, "not the nearest (ties to even) fp16");
  }
}

TEST(Bf16, RoundsToNearestEvenAndKeepsNan) {
  EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7f7fffffu)), 0x7f80);  // FLT_MAX -> Inf
  EXPECT_EQ(fp32_to_bf16(-INFINITY), 0xff80);
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x7f800001u)), 0x7fc0);  // signalling NaN, quieted
  EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0xffc12345u)), 0xffc1);
  for (uint32_t i = 0; i < 65536; ++i) {
    const float f = bf16_to_fp32(static_cast<uint16_t>(i));
    if (!std::isnan(f)) ASSERT_EQ(fp32_to_bf16(f), i);
  }
}

TEST(Fp16, EdgeValuesMatchNumpy) {
  testing::QuantGolden g = load("quant_rows.bin");
  const std::vector<float>& edge = g.f32["edge"];
  ASSERT_FALSE(edge.empty());
  const int64_t n = static_cast<int64_t>(edge.size());
  std::vector<uint8_t> f16(2 * edge.size()), bf16(2 * edge.size());
  ASSERT_TRUE(quantize_row(kF16, edge.data(), f16.data(), n).ok());
  ASSERT_TRUE(quantize_row(kBF16, edge.data(), bf16.data(), n).ok());
  int64_t i = first_byte_mismatch(f16, g.u8["edge.F16"]);
  EXPECT_EQ(i, -1) << std::hexfloat << "fp16 of " << (i >= 0 ? edge[i / 2] : 0.0f);
  i = first_byte_mismatch(bf16, g.u8["edge.BF16"]);
  EXPECT_EQ(i, -1) << std::hexfloat << "bf16 of " << (i >= 0 ? edge[i / 2] : 0.0f);
  // The scalar path too (the row above may have used F16C).
  std::vector<uint16_t> scalar(edge.size());
  fp32_to_fp16_row_scalar(edge.data(), scalar.data(), n);
  EXPECT_EQ(std::memcmp(scalar.data(), f16.data(), f16.size()), 0);
}

// ---- block formats against gguf-py ----

TEST(QuantGolden, QuantizeBytesEqualGgufPy) {
  testing::QuantGolden g = load("quant_rows.bin");
  const std::vector<float>& rows = g.f32["rows"];
  const int64_t row_len = g.i64["row_len"].at(0);
  const int64_t n_rows = static_cast<int64_t>(rows.size()) / row_len;
  ASSERT_GT(n_rows, 10);
  for (const Named& t : kQuantizable) {
    const std::vector<uint8_t>& want = g.u8[std::string(t.name) + ".quant"];
    const int64_t rb = row_bytes(t.type, row_len);
    ASSERT_EQ(static_cast<int64_t>(want.size()), n_rows * rb) << t.name;
    for (int64_t r = 0; r < n_rows; ++r) {
      std::vector<uint8_t> got(static_cast<size_t>(rb));
      ASSERT_TRUE(quantize_row(t.type, rows.data() + r * row_len, got.data(), row_len).ok());
      const std::vector<uint8_t> ref(want.begin() + r * rb, want.begin() + (r + 1) * rb);
      const int64_t i = first_byte_mismatch(got, ref);
      EXPECT_EQ(i, -1) << t.name << " row " << r << " byte " << i << " (block " << i / block_bytes(t.type)
                       << "): " << int(got[i >= 0 ? i : 0]) << " vs gguf-py " << int(ref[i >= 0 ? i : 0]);
    }
  }
}

TEST(QuantGolden, DequantizeEqualsGgufPy) {
  testing::QuantGolden g = load("quant_rows.bin");
  const int64_t n = static_cast<int64_t>(g.f32["rows"].size());
  for (const Named& t : kQuantizable) {
    const std::vector<uint8_t>& q = g.u8[std::string(t.name) + ".quant"];
    const std::vector<float>& want = g.f32[std::string(t.name) + ".dequant"];
    ASSERT_EQ(static_cast<int64_t>(want.size()), n) << t.name;
    std::vector<float> got(want.size());
    ASSERT_TRUE(dequantize_row(t.type, q.data(), got.data(), n).ok()) << t.name;
    const int64_t i = first_bit_mismatch(got, want);
    EXPECT_EQ(i, -1) << t.name << " element " << i << ": " << got[i >= 0 ? i : 0] << " vs gguf-py "
                     << want[i >= 0 ? i : 0];
    // From an odd address too (rows inside a file need not be aligned).
    std::vector<uint8_t> shifted(q.size() + 1);
    std::memcpy(shifted.data() + 1, q.data(), q.size());
    std::vector<float> got2(want.size());
    ASSERT_TRUE(dequantize_row(t.type, shifted.data() + 1, got2.data(), n).ok());
    EXPECT_EQ(first_bit_mismatch(got2, want), -1) << t.name << " unaligned";
  }
}

TEST(QuantGolden, KQuantDequantizeEqualsGgufPy) {
  testing::QuantGolden g = load("kquant_blocks.bin");
  for (const Named& t : {Named{"Q4_K", kQ4_K}, Named{"Q5_K", kQ5_K}, Named{"Q6_K", kQ6_K}}) {
    const std::vector<uint8_t>& blocks = g.u8[std::string(t.name) + ".blocks"];
    const std::vector<float>& want = g.f32[std::string(t.name) + ".dequant"];
    ASSERT_FALSE(want.empty()) << t.name;
    ASSERT_EQ(static_cast<int64_t>(blocks.size()), row_bytes(t.type, static_cast<int64_t>(want.size())));
    std::vector<float> got(want.size());
    ASSERT_TRUE(dequantize_row(t.type, blocks.data(), got.data(), static_cast<int64_t>(got.size())).ok());
    const int64_t i = first_bit_mismatch(got, want);
    EXPECT_EQ(i, -1) << t.name << " element " << i << ": " << got[i >= 0 ? i : 0] << " vs gguf-py "
                     << want[i >= 0 ? i : 0];
  }
}

// ---- quantize -> dequantize error bounds ----

// Checks every block of `x` (a multiple of 32 long) quantized to `type` against its bound.
void check_bounds(uint32_t type, const std::vector<float>& x, const std::string& what) {
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(static_cast<size_t>(row_bytes(type, n)));
  std::vector<float> y(x.size());
  ASSERT_TRUE(quantize_row(type, x.data(), q.data(), n).ok());
  ASSERT_TRUE(dequantize_row(type, q.data(), y.data(), n).ok());
  auto r16 = [](float v) { return fp16_to_fp32(fp32_to_fp16(v)); };
  int failures = 0;
  for (int64_t b = 0; b < n / kQK && failures < 5; ++b) {
    const float* xb = x.data() + b * kQK;
    const float* yb = y.data() + b * kQK;
    float amax = 0, mn = xb[0], mx = xb[0];
    for (int j = 0; j < kQK; ++j) {
      amax = std::max(amax, std::fabs(xb[j]));
      mn = std::min(mn, xb[j]);
      mx = std::max(mx, xb[j]);
    }
    for (int j = 0; j < kQK; ++j) {
      const double err = std::fabs(static_cast<double>(xb[j]) - yb[j]);
      const double slack = 1e-6 * (std::fabs(mn) + std::fabs(mx)) + 1e-30;  // float rounding
      double bound = 0;
      if (type == kF16) {
        bound = std::max(std::ldexp(std::fabs(static_cast<double>(xb[j])), -11), 0x1p-25);
      } else if (type == kBF16) {
        bound = std::ldexp(std::fabs(static_cast<double>(xb[j])), -8);
      } else if (type == kQ8_0) {  // half a step, plus the step's own fp16 rounding times |q|
        const float d = amax / 127.0f;
        bound = d / 2 + 127 * std::fabs(d - r16(d)) + slack;
      } else if (type == kQ4_0) {     // the far end clips at +7: up to one step there
        const float d = amax / 8.0f;  // |max / -8|
        const int nib = (q[b * sizeof(BlockQ4_0) + 2 + j % 16] >> (j < 16 ? 0 : 4)) & 15;
        bound = (nib == 15 ? d : d / 2) + 8 * std::fabs(d - std::fabs(r16(d))) + slack;
      } else if (type == kQ4_1) {
        const float d = (mx - mn) / 15.0f;
        bound = d / 2 + 15 * std::fabs(d - r16(d)) + std::fabs(mn - r16(mn)) + slack;
      }
      if (!(err <= bound)) {
        ADD_FAILURE() << what << " " << type_name(type) << " block " << b << " element " << j << ": x " << xb[j]
                      << " -> " << yb[j] << ", error " << err << " > bound " << bound;
        ++failures;
      }
    }
  }
}

TEST(QuantBounds, RoundTripErrorWithinEachFormatsBound) {
  testing::QuantGolden g = load("quant_rows.bin");
  const std::vector<float>& rows = g.f32["rows"];
  const int64_t row_len = g.i64["row_len"].at(0);
  const int64_t n_bound = g.i64["n_bound_rows"].at(0);  // the last golden row overflows fp16
  std::mt19937 rng(42);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> expo(-6.0f, 3.5f);
  std::vector<std::vector<float>> cases;
  for (int64_t r = 0; r < n_bound; ++r)
    cases.emplace_back(rows.begin() + r * row_len, rows.begin() + (r + 1) * row_len);
  for (int r = 0; r < 64; ++r) {
    std::vector<float> x(1024);
    const float scale = std::pow(10.0f, expo(rng));
    const float shift = r % 4 == 0 ? 2.0f * scale : 0.0f;
    for (float& v : x) v = normal(rng) * scale + shift;
    cases.push_back(std::move(x));
  }
  for (const Named& t : kQuantizable)
    for (size_t c = 0; c < cases.size(); ++c) check_bounds(t.type, cases[c], "case " + std::to_string(c));
}

// ---- the real model ----

TEST(QuantModel, RowsOfTheRealModelDequantizeLikeGgufPy) {
  if (!std::filesystem::exists(kModel)) FAIL() << kModel << " is missing: run scripts/fetch_model.sh (scripts/test.sh does)";
  testing::QuantGolden g = load("model_rows.bin");
  auto f = io::GgufFile::open(kModel);
  ASSERT_TRUE(f.ok()) << f.status().message();
  for (const std::string name : {"token_embd.weight", "blk.0.ffn_down.weight"}) {
    const io::GgufTensorInfo* t = f->find_tensor(name);
    ASSERT_NE(t, nullptr) << name;
    ASSERT_EQ(t->type, static_cast<uint32_t>(g.i64[name + ".type"].at(0))) << name;
    const int64_t row = t->dims[0], rb = row_bytes(t->type, row);
    const std::vector<int64_t>& rows = g.i64[name + ".rows"];
    const std::vector<uint8_t>& bytes = g.u8[name + ".bytes"];
    const std::vector<float>& want = g.f32[name + ".dequant"];
    ASSERT_EQ(static_cast<int64_t>(bytes.size()), static_cast<int64_t>(rows.size()) * rb) << name;
    ASSERT_EQ(static_cast<int64_t>(want.size()), static_cast<int64_t>(rows.size()) * row) << name;
    for (size_t k = 0; k < rows.size(); ++k) {
      const uint8_t* src = t->data + rows[k] * rb;
      ASSERT_EQ(std::memcmp(src, bytes.data() + k * rb, static_cast<size_t>(rb)), 0)
          << name << " row " << rows[k] << ": the model file differs from the one the golden file was made from";
      std::vector<float> got(static_cast<size_t>(row));
      ASSERT_TRUE(dequantize_row(t->type, src, got.data(), row).ok());
      const std::vector<float> ref(want.begin() + k * row, want.begin() + (k + 1) * row);
      const int64_t i = first_bit_mismatch(got, ref);
      EXPECT_EQ(i, -1) << name << " row " << rows[k] << " element " << i;
    }
  }
}

}  // namespace
}  // namespace longctx::quant
