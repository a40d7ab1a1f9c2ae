// model::quantize_gguf (`longctx quantize`): the per-tensor rules on a small crafted GGUF, errors
// leaving no output, and a round trip of the real model (SmolLM2-135M Q4_1, skipped when
// missing) to q8_0 and f16, read back with our reader and, when python3 has the `gguf` package,
// checked with gguf-py by tests/model/check_quantized.py.
#include "model/quantize_gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "core/element_type.h"
#include "io/gguf.h"
#include "quant/formats.h"
#include "quant/fp16.h"

namespace longctx::model {
namespace {

namespace fs = std::filesystem;
const std::string kSourceDir = LONGCTX_SOURCE_DIR;
const std::string kModel = kSourceDir + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

// A fresh directory under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("longctx_quant_" + std::to_string(rd()) + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t n_files() const {
    return static_cast<size_t>(std::distance(fs::directory_iterator(path_), fs::directory_iterator()));
  }

 private:
  fs::path path_;
};

std::vector<float> dequantize_tensor(const io::GgufTensorInfo& t) {
  std::vector<float> out(t.n_elements);
  Status st = quant::dequantize_row(t.type, t.data, out.data(), static_cast<int64_t>(t.n_elements));
  EXPECT_TRUE(st.ok()) << t.name << ": " << st.message();
  return out;
}

std::vector<uint8_t> quantized(uint32_t type, const std::vector<float>& x) {
  std::vector<uint8_t> q(static_cast<size_t>(quant::row_bytes(type, static_cast<int64_t>(x.size()))));
  EXPECT_TRUE(quant::quantize_row(type, x.data(), q.data(), static_cast<int64_t>(x.size())).ok());
  return q;
}

TEST(QuantizeGguf, ParsesOutputTypes) {
  EXPECT_EQ(*parse_output_type("q8_0"), kQ8_0);
  EXPECT_EQ(*parse_output_type("Q4_1"), kQ4_1);
  EXPECT_EQ(*parse_output_type("bf16"), kBF16);
  EXPECT_EQ(*parse_output_type("F32"), kF32);
  auto bad = parse_output_type("q4_k");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "unknown type 'q4_k' (expected one of f32, f16, bf16, q8_0, q4_0, q4_1)");
  EXPECT_EQ(llama_file_type(kF32), 0u);
  EXPECT_EQ(llama_file_type(kF16), 1u);
  EXPECT_EQ(llama_file_type(kQ4_0), 2u);
  EXPECT_EQ(llama_file_type(kQ4_1), 3u);
  EXPECT_EQ(llama_file_type(kQ8_0), 7u);
  EXPECT_EQ(llama_file_type(kBF16), 32u);
}

// A checkpoint-like file: an F32 matrix, an F32 matrix with 48-element rows (not whole Q8_0
// blocks), an F16 norm, an I32 tensor, a Q4_1 matrix and a 3-D F32 stack.
struct Crafted {
  std::vector<float> mat, odd, norm_f, stack;
  std::vector<uint16_t> norm;
  std::vector<int32_t> idx{3, 1, 4, 1};
  std::vector<uint8_t> q41;
  std::vector<float> q41_values;
};

Crafted write_crafted(const std::string& path) {
  Crafted c;
  std::mt19937 rng(7);
  std::normal_distribution<float> nd;
  for (int i = 0; i < 64 * 3; ++i) c.mat.push_back(nd(rng));
  for (int i = 0; i < 48 * 2; ++i) c.odd.push_back(nd(rng) * 3);
  for (int i = 0; i < 64; ++i) c.norm.push_back(quant::fp32_to_fp16(1.0f + 0.01f * i));
  for (int i = 0; i < 32 * 2 * 2; ++i) c.stack.push_back(nd(rng));
  for (int i = 0; i < 64; ++i) c.q41_values.push_back(nd(rng));
  c.q41 = quantized(kQ4_1, c.q41_values);
  io::GgufWriter w;
  w.set_string("general.architecture", "longctx");
  w.set_u32("general.file_type", 0);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "b"});
  w.set_f32("longctx.norm_eps", 1e-5f);
  EXPECT_TRUE(w.add_tensor("mat.weight", {64, 3}, kF32, c.mat.data(), c.mat.size() * 4).ok());
  EXPECT_TRUE(w.add_tensor("odd.weight", {48, 2}, kF32, c.odd.data(), c.odd.size() * 4).ok());
  EXPECT_TRUE(w.add_tensor("norm.weight", {64}, kF16, c.norm.data(), c.norm.size() * 2).ok());
  EXPECT_TRUE(w.add_tensor("idx", {4}, 26, c.idx.data(), c.idx.size() * 4).ok());
  EXPECT_TRUE(w.add_tensor("q41.weight", {32, 2}, kQ4_1, c.q41.data(), c.q41.size()).ok());
  EXPECT_TRUE(w.add_tensor("stack.weight", {32, 2, 2}, kF32, c.stack.data(), c.stack.size() * 4).ok());
  Status st = w.write(path);
  EXPECT_TRUE(st.ok()) << st.message();
  return c;
}

TEST(QuantizeGguf, AppliesThePerTensorRules) {
  TempDir dir;
  const Crafted c = write_crafted(dir.file("in.gguf"));
  std::vector<std::string> warnings;
  std::vector<std::string> progress;
  QuantizeGgufOptions opt;
  opt.warn = [&](const std::string& m) { warnings.push_back(m); };
  opt.progress = [&](size_t i, size_t n, const std::string& name) {
    progress.push_back(std::to_string(i) + "/" + std::to_string(n) + " " + name);
  };
  auto stats = quantize_gguf(dir.file("in.gguf"), dir.file("out.gguf"), kQ8_0, opt);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->n_tensors, 6u);
  EXPECT_EQ(stats->n_as_type, 3u);  // mat, q41, stack
  EXPECT_EQ(stats->n_f16_fallback, 1u);
  EXPECT_EQ(stats->n_f32, 1u);
  EXPECT_EQ(stats->n_integer, 1u);
  EXPECT_EQ(stats->n_copied, 1u);
  EXPECT_EQ(stats->n_requantized, 1u);
  ASSERT_EQ(progress.size(), 6u);
  EXPECT_EQ(progress[0], "0/6 mat.weight");
  ASSERT_EQ(warnings.size(), 3u);
  EXPECT_EQ(warnings[0],
            "tensor 'odd.weight' has rows of 48 elements, not a whole number of Q8_0 blocks of 32: kept as F16");
  EXPECT_EQ(warnings[1], "tensor 'idx' is I32: copied unchanged");
  EXPECT_EQ(warnings[2],
            "1 tensor is already Q4_1: converting to Q8_0 cannot add precision (dequantized, then converted)");

  auto f = io::GgufFile::open(dir.file("out.gguf"));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(*f->get_uint("general.file_type"), 7u);
  EXPECT_EQ(*f->get_uint("general.quantization_version"), 2u);
  EXPECT_EQ(*f->get_string("general.architecture"), "longctx");
  EXPECT_EQ(*f->get_float("longctx.norm_eps"), 1e-5f);
  EXPECT_EQ(f->get_string_array("tokenizer.ggml.tokens")->size(), 2u);
  ASSERT_EQ(f->metadata()[1].key, "general.file_type");  // replaced in place
  const struct {
    const char* name;
    uint32_t type;
  } want[] = {{"mat.weight", kQ8_0}, {"odd.weight", kF16},  {"norm.weight", kF32},
              {"idx", 26},           {"q41.weight", kQ8_0}, {"stack.weight", kQ8_0}};
  ASSERT_EQ(f->tensors().size(), 6u);
  for (size_t i = 0; i < 6; ++i) {
    EXPECT_EQ(f->tensors()[i].name, want[i].name);
    EXPECT_EQ(f->tensors()[i].type, want[i].type) << want[i].name;
  }
  // Converted bytes are exactly what quantize_row makes of the (dequantized) source.
  auto bytes_of = [&](const char* name) {
    const io::GgufTensorInfo* t = f->find_tensor(name);
    return std::vector<uint8_t>(t->data, t->data + t->n_bytes);
  };
  EXPECT_EQ(bytes_of("mat.weight"), quantized(kQ8_0, c.mat));
  EXPECT_EQ(bytes_of("odd.weight"), quantized(kF16, c.odd));
  EXPECT_EQ(bytes_of("stack.weight"), quantized(kQ8_0, c.stack));
  std::vector<float> q41_deq(64);
  ASSERT_TRUE(quant::dequantize_row(kQ4_1, c.q41.data(), q41_deq.data(), 64).ok());
  EXPECT_EQ(bytes_of("q41.weight"), quantized(kQ8_0, q41_deq));
  const std::vector<uint8_t> idx = bytes_of("idx");
  EXPECT_EQ(std::memcmp(idx.data(), c.idx.data(), 16), 0);
  const std::vector<float> norm = dequantize_tensor(*f->find_tensor("norm.weight"));
  for (int i = 0; i < 64; ++i) EXPECT_EQ(norm[i], quant::fp16_to_fp32(c.norm[i]));
  EXPECT_EQ(f->find_tensor("stack.weight")->dims, (std::vector<int64_t>{32, 2, 2}));
}

TEST(QuantizeGguf, SameTypeIsCopiedAndF32KeepsEverything) {
  TempDir dir;
  const Crafted c = write_crafted(dir.file("in.gguf"));
  auto stats = quantize_gguf(dir.file("in.gguf"), dir.file("out.gguf"), kF32);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  EXPECT_EQ(stats->n_as_type, 5u);
  EXPECT_EQ(stats->n_copied, 4u);  // mat, odd, stack (F32) and idx
  auto f = io::GgufFile::open(dir.file("out.gguf"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(*f->get_uint("general.file_type"), 0u);
  EXPECT_EQ(f->find("general.quantization_version"), nullptr);
  EXPECT_EQ(dequantize_tensor(*f->find_tensor("mat.weight")), c.mat);
  EXPECT_EQ(f->find_tensor("q41.weight")->type, kF32);
}

TEST(QuantizeGguf, ErrorsLeaveNoOutput) {
  TempDir dir;
  auto missing = quantize_gguf(dir.file("nope.gguf"), dir.file("out.gguf"), kQ8_0);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("nope.gguf"), std::string::npos);
  // A Q2_K matrix: a type ggml has but we cannot dequantize.
  std::vector<uint8_t> q2k(84, 0);
  io::GgufWriter w;
  ASSERT_TRUE(w.add_tensor("blk.0.attn_q.weight", {256, 1}, 10, q2k.data(), q2k.size()).ok());
  ASSERT_TRUE(w.write(dir.file("q2k.gguf")).ok());
  auto bad = quantize_gguf(dir.file("q2k.gguf"), dir.file("out.gguf"), kQ8_0);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("tensor 'blk.0.attn_q.weight' is Q2_K, which longctx cannot dequantize"),
            std::string::npos)
      << bad.status().message();
  EXPECT_FALSE(fs::exists(dir.file("out.gguf")));
  EXPECT_EQ(dir.n_files(), 1u);  // q2k.gguf only: no temp files either
  EXPECT_FALSE(quantize_gguf(dir.file("q2k.gguf"), dir.file("out.gguf"), kQ4_K).ok());
  EXPECT_FALSE(fs::exists(dir.file("out.gguf")));
}

// ---- the real model ----

bool have_gguf_py() { return std::system("python3 -c 'import gguf.quants' >/dev/null 2>&1") == 0; }

void round_trip_real_model(uint32_t type, const char* type_arg) {
  if (!fs::exists(kModel)) FAIL() << kModel << " is missing: run scripts/fetch_model.sh (scripts/test.sh does)";
  TempDir dir;
  const std::string out = dir.file(std::string("smollm2.") + type_arg + ".gguf");
  std::vector<std::string> warnings;
  QuantizeGgufOptions opt;
  opt.warn = [&](const std::string& m) { warnings.push_back(m); };
  auto stats = quantize_gguf(kModel, out, type, opt);
  ASSERT_TRUE(stats.ok()) << stats.status().message();
  ASSERT_EQ(warnings.size(), type == kQ8_0 ? 1u : 2u);  // Q4_1 (and Q8_0 unless copied) requantized
  EXPECT_NE(warnings[0].find("already Q4_1"), std::string::npos) << warnings[0];

  auto src = io::GgufFile::open(kModel);
  auto dst = io::GgufFile::open(out);
  ASSERT_TRUE(src.ok() && dst.ok());
  EXPECT_EQ(*dst->get_uint("general.file_type"), llama_file_type(type));
  EXPECT_EQ(*dst->get_string("general.architecture"), "llama");
  EXPECT_EQ(dst->metadata().size(), src->metadata().size());
  ASSERT_EQ(dst->tensors().size(), src->tensors().size());
  for (size_t i = 0; i < src->tensors().size(); ++i) {
    const io::GgufTensorInfo& a = src->tensors()[i];
    const io::GgufTensorInfo& b = dst->tensors()[i];
    ASSERT_EQ(a.name, b.name);
    ASSERT_EQ(a.dims, b.dims);
    ASSERT_EQ(b.type, a.dims.size() == 1 ? kF32 : type) << a.name;
    if (a.type == b.type) {
      ASSERT_EQ(std::memcmp(a.data, b.data, a.n_bytes), 0) << a.name << " should be copied";
      continue;
    }
    const std::vector<float> x = dequantize_tensor(a), y = dequantize_tensor(b);
    for (size_t blk = 0; blk < x.size() / quant::kQK; ++blk) {
      float amax = 0;
      for (int j = 0; j < quant::kQK; ++j) amax = std::max(amax, std::fabs(x[blk * quant::kQK + j]));
      for (int j = 0; j < quant::kQK; ++j) {
        const size_t k = blk * quant::kQK + j;
        const double err = std::fabs(static_cast<double>(x[k]) - y[k]);
        // f16: the values came from fp16-scaled Q4_1 blocks, far inside fp16's normal range.
        const float d = amax / 127.0f, d16 = quant::fp16_to_fp32(quant::fp32_to_fp16(d));
        const double lim = type == kF16 ? std::ldexp(std::fabs(x[k]), -11) + 0x1p-25
                                        : d / 2.0 + 127.0 * std::fabs(d - d16) + 1e-6 * amax;
        ASSERT_LE(err, lim) << a.name << " element " << k;
      }
    }
  }
  if (!have_gguf_py()) {
    std::printf("note: python3 with the gguf package is missing: gguf-py check of %s skipped\n", out.c_str());
    return;
  }
  const std::string cmd =
      "python3 '" + kSourceDir + "/tests/model/check_quantized.py' '" + kModel + "' '" + out + "' " + type_arg;
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

TEST(QuantizeGguf, RealModelToQ8_0) { round_trip_real_model(kQ8_0, "q8_0"); }
TEST(QuantizeGguf, RealModelToF16) { round_trip_real_model(kF16, "f16"); }

}  // namespace
}  // namespace longctx::model
