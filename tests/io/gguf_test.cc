// GGUF reader/writer and atomic file tests. Expectations come from outside the code under test:
// byte layouts built by hand from the spec (docs/gguf.md), ggml's block sizes, and files and
// values produced by gguf-py (tests/io/make_gguf_fixture.py).
#include "io/gguf.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/atomic_file.h"

#ifndef LONGCTX_SOURCE_DIR
#error "LONGCTX_SOURCE_DIR must name the repository root"
#endif

namespace longctx::io {
namespace {

namespace fs = std::filesystem;

// ---- helpers ----

// Little-endian byte builder for hand-made files; independent of the writer under test.
class Bytes {
 public:
  Bytes& u8(uint8_t v) {
    b_.push_back(v);
    return *this;
  }
  Bytes& le(uint64_t v, int n) {
    for (int k = 0; k < n; ++k) b_.push_back(static_cast<uint8_t>(v >> (8 * k)));
    return *this;
  }
  Bytes& u32(uint32_t v) { return le(v, 4); }
  Bytes& u64(uint64_t v) { return le(v, 8); }
  Bytes& raw(const void* p, size_t n) {
    const uint8_t* c = static_cast<const uint8_t*>(p);
    b_.insert(b_.end(), c, c + n);
    return *this;
  }
  Bytes& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF", 4);
    u32(version);
    u64(n_tensors);
    return u64(n_kv);
  }
  Bytes& kv_u32(const std::string& key, uint32_t v) {
    str(key);
    u32(4);
    return u32(v);
  }
  Bytes& tensor(const std::string& name, const std::vector<uint64_t>& dims, uint32_t type,
                uint64_t offset) {
    str(name);
    u32(static_cast<uint32_t>(dims.size()));
    for (uint64_t d : dims) u64(d);
    u32(type);
    return u64(offset);
  }
  Bytes& pad(size_t align) {
    while (b_.size() % align) b_.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b_.resize(b_.size() + n, 0);
    return *this;
  }
  size_t size() const { return b_.size(); }
  std::vector<uint8_t> bytes() const { return b_; }

 private:
  std::vector<uint8_t> b_;
};

// Unwraps an Expected, failing the test (not crashing) on an error.
template <typename T>
T val(Expected<T> e) {
  if (!e.ok()) {
    ADD_FAILURE() << "unexpected error: " << e.status().message();
    return T{};
  }
  return std::move(e).value();
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  Expected<GgufFile> f = GgufFile::from_bytes(bytes);
  EXPECT_FALSE(f.ok()) << "parsed a file that should have been rejected";
  if (f.ok()) return "";
  const std::string msg = f.status().message();
  EXPECT_EQ(msg.rfind("gguf: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
  return msg;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// A fresh directory under the test temp dir, removed at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = fs::path(testing::TempDir()) / "gguf_test_XXXXXX";
    CHECK(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(path_)) out.push_back(e.path().filename());
    std::sort(out.begin(), out.end());
    return out;
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// IEEE half -> float, written out from the format (1 sign, 5 exponent, 10 mantissa bits).
float half_to_float(uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  float v;
  if (exp == 0)
    v = std::ldexp(static_cast<float>(mant), -24);
  else if (exp == 31)
    v = mant ? NAN : INFINITY;
  else
    v = std::ldexp(static_cast<float>(mant | 0x400), exp - 25);
  return sign ? -v : v;
}

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t k = 0; k + 1 < hex.size(); k += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(k, 2), nullptr, 16)));
  }
  return out;
}

std::vector<uint8_t> tensor_bytes(const GgufTensorInfo& t) {
  return std::vector<uint8_t>(t.data, t.data + t.n_bytes);
}

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t k = 0; k < n; ++k) v[k] = static_cast<uint8_t>(seed + 7 * k);
  return v;
}

// ---- ggml types ----

TEST(GgmlTypes, TensorBytes) {
  EXPECT_EQ(val(ggml_tensor_bytes(0, {3, 2})), 24u);
  EXPECT_EQ(val(ggml_tensor_bytes(8, {64, 3})), 2u * 34 * 3);
  EXPECT_EQ(val(ggml_tensor_bytes(12, {512, 2})), 2u * 144 * 2);
  EXPECT_EQ(val(ggml_tensor_bytes(1, {0, 5})), 0u);
  EXPECT_CONTAINS(ggml_tensor_bytes(8, {33}).status().message(), "not a multiple");
  EXPECT_CONTAINS(ggml_tensor_bytes(0, {int64_t{1} << 32, int64_t{1} << 32}).status().message(),
                  "overflows");
  EXPECT_CONTAINS(ggml_tensor_bytes(0, {-1}).status().message(), "negative");
  EXPECT_CONTAINS(ggml_tensor_bytes(77, {1}).status().message(), "unknown ggml type 77");
  // Fits in int64 elements but not in int64 bytes.
  EXPECT_FALSE(ggml_tensor_bytes(0, {int64_t{1} << 62}).ok());
}

// ---- round trips ----

GgufWriter writer_with_every_type() {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u8("t.u8", 255);
  w.set_i8("t.i8", -128);
  w.set_u16("t.u16", 65535);
  w.set_i16("t.i16", -32768);
  w.set_u32("t.u32", 4294967295u);
  w.set_i32("t.i32", std::numeric_limits<int32_t>::min());
  w.set_u64("t.u64", std::numeric_limits<uint64_t>::max());
  w.set_i64("t.i64", std::numeric_limits<int64_t>::min());
  w.set_f32("t.f32", 0.1f);
  w.set_f64("t.f64", -1e-300);
  w.set_bool("t.true", true);
  w.set_bool("t.false", false);
  w.set_string("t.string", std::string("a\0b\n\xc3\xa9", 6));
  w.set_string("t.empty", "");
  w.set_string_array("t.strings", {"<s>", "", "w\xc3\xb6rld"});
  w.set_i32_array("t.i32s", {1, -2, std::numeric_limits<int32_t>::max()});
  w.set_f32_array("t.f32s", {0.5f, -1.25f});
  w.set("t.u8s", GgufValue::array(std::vector<uint8_t>{0, 200, 255}));
  w.set("t.i8s", GgufValue::array(std::vector<int8_t>{-1, 127}));
  w.set("t.u16s", GgufValue::array(std::vector<uint16_t>{65535}));
  w.set("t.i16s", GgufValue::array(std::vector<int16_t>{-32768, 1}));
  w.set("t.u32s", GgufValue::array(std::vector<uint32_t>{7, 4294967295u}));
  w.set("t.u64s", GgufValue::array(std::vector<uint64_t>{0, std::numeric_limits<uint64_t>::max()}));
  w.set("t.i64s", GgufValue::array(std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 5}));
  w.set("t.f64s", GgufValue::array(std::vector<double>{1e300, -0.0}));
  w.set("t.bools", GgufValue::array(std::vector<bool>{true, false, true}));
  w.set("t.empty_i32s", GgufValue::array(std::vector<int32_t>{}));
  w.set("t.empty_strings", GgufValue::array(std::vector<std::string>{}));
  return w;
}

TEST(GgufRoundTrip, EveryMetadataType) {
  Expected<std::vector<uint8_t>> bytes = writer_with_every_type().to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  Expected<GgufFile> f = GgufFile::from_bytes(*bytes);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_TRUE(f->tensors().empty());

  EXPECT_EQ(val(f->get_string("general.architecture")), "llama");
  EXPECT_EQ(val(f->get_uint("t.u8")), 255u);
  EXPECT_EQ(val(f->get_int("t.i8")), -128);
  EXPECT_EQ(val(f->get_uint("t.u16")), 65535u);
  EXPECT_EQ(val(f->get_int("t.i16")), -32768);
  EXPECT_EQ(val(f->get_uint("t.u32")), 4294967295u);
  EXPECT_EQ(val(f->get_int("t.i32")), std::numeric_limits<int32_t>::min());
  EXPECT_EQ(val(f->get_uint("t.u64")), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(val(f->get_int("t.i64")), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(val(f->get_float("t.f32")), static_cast<double>(0.1f));
  EXPECT_EQ(val(f->get_float("t.f64")), -1e-300);
  EXPECT_TRUE(val(f->get_bool("t.true")));
  EXPECT_FALSE(val(f->get_bool("t.false")));
  EXPECT_EQ(val(f->get_string("t.string")), std::string("a\0b\n\xc3\xa9", 6));
  EXPECT_EQ(val(f->get_string("t.empty")), "");
  EXPECT_EQ(val(f->get_string_array("t.strings")),
            (std::vector<std::string>{"<s>", "", "w\xc3\xb6rld"}));
  EXPECT_EQ(val(f->get_int_array("t.i32s")),
            (std::vector<int64_t>{1, -2, std::numeric_limits<int32_t>::max()}));
  EXPECT_EQ(val(f->get_float_array("t.f32s")), (std::vector<double>{0.5, -1.25}));
  EXPECT_EQ(val(f->get_int_array("t.u8s")), (std::vector<int64_t>{0, 200, 255}));
  EXPECT_EQ(val(f->get_int_array("t.i8s")), (std::vector<int64_t>{-1, 127}));
  EXPECT_EQ(val(f->get_int_array("t.u16s")), (std::vector<int64_t>{65535}));
  EXPECT_EQ(val(f->get_int_array("t.i16s")), (std::vector<int64_t>{-32768, 1}));
  EXPECT_EQ(val(f->get_int_array("t.u32s")), (std::vector<int64_t>{7, 4294967295}));
  EXPECT_EQ(f->find("t.u64s")->uint_at(1), std::numeric_limits<uint64_t>::max());
  EXPECT_EQ(val(f->get_int_array("t.i64s")),
            (std::vector<int64_t>{std::numeric_limits<int64_t>::min(), 5}));
  std::vector<double> f64s = val(f->get_float_array("t.f64s"));
  ASSERT_EQ(f64s.size(), 2u);
  EXPECT_EQ(f64s[0], 1e300);
  EXPECT_TRUE(std::signbit(f64s[1]));
  const GgufValue* bools = f->find("t.bools");
  ASSERT_NE(bools, nullptr);
  EXPECT_EQ(bools->elem_type(), GgufType::kBool);
  EXPECT_EQ(bools->size(), 3u);
  EXPECT_TRUE(bools->bool_at(0));
  EXPECT_FALSE(bools->bool_at(1));
  EXPECT_TRUE(bools->bool_at(2));
  EXPECT_TRUE(f->get_int_array("t.empty_i32s")->empty());
  EXPECT_TRUE(f->get_string_array("t.empty_strings")->empty());

  // Types survive exactly, and iteration follows insertion order.
  const std::vector<std::pair<std::string, GgufType>> expected_order = {
      {"general.architecture", GgufType::kString},
      {"t.u8", GgufType::kU8},
      {"t.i8", GgufType::kI8},
      {"t.u16", GgufType::kU16},
      {"t.i16", GgufType::kI16},
      {"t.u32", GgufType::kU32},
      {"t.i32", GgufType::kI32},
      {"t.u64", GgufType::kU64},
      {"t.i64", GgufType::kI64},
      {"t.f32", GgufType::kF32},
      {"t.f64", GgufType::kF64},
      {"t.true", GgufType::kBool},
      {"t.false", GgufType::kBool},
      {"t.string", GgufType::kString},
      {"t.empty", GgufType::kString},
  };
  ASSERT_GE(f->metadata().size(), expected_order.size());
  for (size_t k = 0; k < expected_order.size(); ++k) {
    EXPECT_EQ(f->metadata()[k].key, expected_order[k].first);
    EXPECT_EQ(f->metadata()[k].value.type(), expected_order[k].second) << expected_order[k].first;
  }
  EXPECT_EQ(f->metadata().size(), 29u);
  EXPECT_EQ(f->metadata().back().key, "t.empty_strings");
}

TEST(GgufRoundTrip, ReplacingAKeyKeepsItsPosition) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_u32("b", 2);
  w.set_string("a", "now a string");
  Expected<GgufFile> f = GgufFile::from_bytes(val(w.to_bytes()));
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->metadata().size(), 2u);
  EXPECT_EQ(f->metadata()[0].key, "a");
  EXPECT_EQ(val(f->get_string("a")), "now a string");
  EXPECT_EQ(f->metadata()[1].key, "b");
}

TEST(GgufRoundTrip, ExactBytesMatchTheSpecLayout) {
  const float data[2] = {1.0f, -2.0f};
  GgufWriter w;
  w.set_u32("n", 7);
  ASSERT_TRUE(w.add_tensor("x", {2}, 0, data, sizeof(data)).ok());
  Bytes expected;
  expected.header(3, 1, 1).kv_u32("n", 7).tensor("x", {2}, 0, 0).pad(32);
  expected.raw(data, sizeof(data)).pad(32);
  EXPECT_EQ(val(w.to_bytes()), expected.bytes());

  GgufWriter empty;
  EXPECT_EQ(val(empty.to_bytes()), Bytes().header(3, 0, 0).pad(32).bytes());
}

TEST(GgufRoundTrip, SeveralTensors) {
  struct Spec {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type;
    size_t n_bytes;
  };
  // Byte counts from the ggml block sizes, worked out by hand.
  const std::vector<Spec> specs = {
      {"token_embd.weight", {3, 2}, 0, 24},           // F32
      {"output_norm.weight", {5}, 1, 10},             // F16: not a multiple of 32 -> padding
      {"blk.0.attn_q.weight", {64, 3}, 8, 204},       // Q8_0: 2 blocks/row x 34 x 3
      {"blk.0.ffn_up.weight", {256, 1}, 12, 144},     // Q4_K: one super-block
      {"blk.0.attn_k.weight", {7, 1, 1, 2}, 30, 28},  // BF16, 4 dims
      {"empty", {0, 4}, 0, 0},
  };
  std::vector<std::vector<uint8_t>> data;
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  for (size_t k = 0; k < specs.size(); ++k) {
    data.push_back(pattern(specs[k].n_bytes, static_cast<uint8_t>(k * 31)));
  }
  for (size_t k = 0; k < specs.size(); ++k) {
    Status st =
        w.add_tensor(specs[k].name, specs[k].dims, specs[k].type, data[k].data(), data[k].size());
    ASSERT_TRUE(st.ok()) << st.message();
  }
  std::vector<uint8_t> bytes = val(w.to_bytes());
  Expected<GgufFile> f = GgufFile::from_bytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->data_offset() % 32, 0u);
  ASSERT_EQ(f->tensors().size(), specs.size());
  const uint8_t* base = f->tensors()[0].data - f->tensors()[0].offset - f->data_offset();
  uint64_t prev_end = 0;
  for (size_t k = 0; k < specs.size(); ++k) {
    const GgufTensorInfo& t = f->tensors()[k];
    EXPECT_EQ(t.name, specs[k].name);
    EXPECT_EQ(t.dims, specs[k].dims);
    EXPECT_EQ(t.type, specs[k].type);
    EXPECT_EQ(t.n_bytes, specs[k].n_bytes);
    uint64_t n = 1;
    for (int64_t d : specs[k].dims) n *= d;
    EXPECT_EQ(t.n_elements, n);
    EXPECT_EQ(t.offset % 32, 0u) << t.name;
    EXPECT_GE(t.offset, prev_end) << "tensors overlap";
    prev_end = t.offset + t.n_bytes;
    EXPECT_EQ(t.data, base + f->data_offset() + t.offset);
    EXPECT_EQ(tensor_bytes(t), data[k]) << t.name;
    EXPECT_EQ(f->find_tensor(specs[k].name), &t);
  }
  EXPECT_EQ(f->find_tensor("nope"), nullptr);
  EXPECT_EQ(bytes.size() % 32, 0u);
}

TEST(GgufRoundTrip, CustomAlignment) {
  const std::vector<uint8_t> a = pattern(10, 1), b = pattern(40, 2);
  GgufWriter w;
  w.set_u32("general.alignment", 64);
  ASSERT_TRUE(w.add_tensor("a", {10}, 24, a.data(), a.size()).ok());  // I8
  ASSERT_TRUE(w.add_tensor("b", {10}, 0, b.data(), b.size()).ok());
  Expected<GgufFile> f = GgufFile::from_bytes(val(w.to_bytes()));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->data_offset() % 64, 0u);
  EXPECT_EQ(f->tensors()[1].offset, 64u);
  EXPECT_EQ(tensor_bytes(f->tensors()[1]), b);
}

TEST(GgufRoundTrip, WriteThenOpenMapsTheFile) {
  TempDir dir;
  const std::vector<uint8_t> a = pattern(24, 3);
  GgufWriter w = writer_with_every_type();
  ASSERT_TRUE(w.add_tensor("a", {3, 2}, 0, a.data(), a.size()).ok());
  const std::string path = dir.file("model.gguf");
  Status st = w.write(path);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"model.gguf"});  // no temp file left
  Expected<std::string> on_disk = read_file(path);
  ASSERT_TRUE(on_disk.ok());
  EXPECT_EQ(std::vector<uint8_t>(on_disk->begin(), on_disk->end()), val(w.to_bytes()));

  Expected<GgufFile> f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->path(), path);
  EXPECT_EQ(f->file_size(), on_disk->size());
  EXPECT_EQ(tensor_bytes(f->tensors()[0]), a);
  // Moving the file keeps tensor pointers valid (the mapping does not move).
  const uint8_t* before = f->tensors()[0].data;
  GgufFile moved = std::move(f).value();
  EXPECT_EQ(moved.tensors()[0].data, before);
  EXPECT_EQ(tensor_bytes(moved.tensors()[0]), a);
}

// ---- malformed input ----

// A valid file with metadata of several kinds and three tensors, built by our writer.
std::vector<uint8_t> valid_file() {
  static const std::vector<uint8_t> a = pattern(24, 5), b = pattern(68, 6), c = pattern(10, 7);
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u32("llama.block_count", 2);
  w.set_f32("llama.rope.freq_base", 10000.0f);
  w.set_bool("b", true);
  w.set_string_array("tokenizer.ggml.tokens", {"a", "bc", ""});
  w.set_f32_array("tokenizer.ggml.scores", {1.0f, 2.0f, 3.0f});
  EXPECT_TRUE(w.add_tensor("a", {3, 2}, 0, a.data(), a.size()).ok());
  EXPECT_TRUE(w.add_tensor("b", {64}, 8, b.data(), b.size()).ok());
  EXPECT_TRUE(w.add_tensor("c", {5}, 1, c.data(), c.size()).ok());
  return val(w.to_bytes());
}

TEST(GgufReaderErrors, EveryTruncationIsAnError) {
  const std::vector<uint8_t> full = valid_file();
  Expected<GgufFile> f = GgufFile::from_bytes(full);
  ASSERT_TRUE(f.ok()) << f.status().message();
  const GgufTensorInfo& last = f->tensors().back();
  const size_t data_end = f->data_offset() + last.offset + last.n_bytes;
  ASSERT_LT(data_end, full.size());  // the trailing padding exists
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<uint8_t> prefix(full.begin(), full.begin() + n);
    Expected<GgufFile> g = GgufFile::from_bytes(prefix);
    // Only the padding after the last tensor may be cut without losing anything.
    if (n < data_end) {
      EXPECT_FALSE(g.ok()) << "prefix of " << n << " bytes parsed";
      if (!g.ok()) {
        EXPECT_EQ(g.status().message().find('\n'), std::string::npos);
      }
    } else {
      EXPECT_TRUE(g.ok()) << n << ": " << g.status().message();
    }
  }
}

TEST(GgufReaderErrors, WrongMagic) {
  std::vector<uint8_t> bytes = valid_file();
  bytes[0] = 'g';
  EXPECT_CONTAINS(parse_error(bytes), "bad magic 'gGUF'");
  EXPECT_CONTAINS(parse_error({'G', 'G'}), "too short");
  EXPECT_CONTAINS(parse_error({}), "too short");
}

TEST(GgufReaderErrors, UnsupportedVersions) {
  EXPECT_CONTAINS(parse_error(Bytes().header(1, 0, 0).bytes()), "unsupported GGUF version 1");
  EXPECT_CONTAINS(parse_error(Bytes().header(4, 0, 0).bytes()), "unsupported GGUF version 4");
  EXPECT_CONTAINS(parse_error(Bytes().header(0x03000000, 0, 0).bytes()), "big-endian");
  // v2 has the same layout as v3 and is read.
  Expected<GgufFile> v2 = GgufFile::from_bytes(Bytes().header(2, 0, 1).kv_u32("k", 5).bytes());
  ASSERT_TRUE(v2.ok()) << v2.status().message();
  EXPECT_EQ(v2->version(), 2u);
  EXPECT_EQ(val(v2->get_uint("k")), 5u);
}

TEST(GgufReaderErrors, AbsurdCounts) {
  EXPECT_CONTAINS(parse_error(Bytes().header(3, uint64_t{1} << 62, 0).zeros(64).bytes()),
                  "tensor count 4611686018427387904 cannot fit");
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, ~uint64_t{0}).zeros(64).bytes()),
                  "metadata count");
  // A key whose length is larger than the file.
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).u64(uint64_t{1} << 63).zeros(16).bytes()),
                  "string length 9223372036854775808");
  // A string value, an array, and a string inside an array, each claiming too much.
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).str("k").u32(8).u64(1000).zeros(8).bytes()),
                  "the value of key 'k': string length 1000");
  EXPECT_CONTAINS(
      parse_error(Bytes().header(3, 0, 1).str("k").u32(9).u32(4).u64(uint64_t{1} << 61).bytes()),
      "key 'k': array length 2305843009213693952 cannot fit");
  EXPECT_CONTAINS(
      parse_error(Bytes().header(3, 0, 1).str("k").u32(9).u32(8).u64(2).str("x").u64(99).bytes()),
      "element 1 of key 'k': string length 99");
}

TEST(GgufReaderErrors, BadValues) {
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).str("k").u32(13).u64(0).bytes()),
                  "key 'k': unknown value type 13");
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).str("k").u32(7).u8(2).bytes()),
                  "key 'k': invalid bool value 2");
  EXPECT_CONTAINS(
      parse_error(Bytes().header(3, 0, 1).str("k").u32(9).u32(7).u64(2).u8(1).u8(5).bytes()),
      "invalid bool value 5 at index 1");
  EXPECT_CONTAINS(
      parse_error(Bytes().header(3, 0, 1).str("k").u32(9).u32(9).u64(1).u32(4).u64(0).bytes()),
      "key 'k': nested arrays are not supported");
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).str("k").u32(9).u32(20).u64(0).bytes()),
                  "unknown array element type 20");
  // Binary junk in a key is escaped, so the message stays one line.
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).str("a\nb").u32(13).bytes()),
                  "key 'a\\x0ab'");
}

TEST(GgufReaderErrors, DuplicateKeyAndTensor) {
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 2).kv_u32("a.b", 1).kv_u32("a.b", 2).bytes()),
                  "duplicate key 'a.b'");
  Bytes t;
  t.header(3, 2, 0).tensor("w", {8}, 0, 0).tensor("w", {8}, 0, 32).pad(32).zeros(64);
  EXPECT_CONTAINS(parse_error(t.bytes()), "duplicate tensor name 'w'");
}

TEST(GgufReaderErrors, Dims) {
  auto one_tensor = [](const std::vector<uint64_t>& dims, uint32_t type) {
    return Bytes().header(3, 1, 0).tensor("w", dims, type, 0).pad(32).zeros(256).bytes();
  };
  EXPECT_CONTAINS(parse_error(one_tensor({uint64_t{1} << 32, uint64_t{1} << 32, 16}, 0)),
                  "tensor 'w': element count of dims [4294967296, 4294967296, 16] overflows");
  EXPECT_CONTAINS(parse_error(one_tensor({~uint64_t{0}}, 0)), "does not fit in int64");
  EXPECT_CONTAINS(parse_error(one_tensor({}, 0)), "tensor 'w': n_dims 0 is out of range");
  EXPECT_CONTAINS(parse_error(one_tensor({1, 1, 1, 1, 1}, 0)), "n_dims 5 is out of range");
  EXPECT_CONTAINS(parse_error(one_tensor({33}, 8)), "tensor 'w': ne[0] = 33 is not a multiple");
  EXPECT_CONTAINS(parse_error(one_tensor({4}, 99)), "tensor 'w' has unknown ggml type 99");
  EXPECT_CONTAINS(parse_error(one_tensor({4}, 4)), "unknown ggml type 4");
  EXPECT_TRUE(GgufFile::from_bytes(one_tensor({4, 4, 2, 2}, 0)).ok());
}

TEST(GgufReaderErrors, TensorDataPastTheEnd) {
  Bytes t;
  t.header(3, 1, 0).tensor("blk.3.attn_q.weight", {64}, 0, 0).pad(32).zeros(255);  // needs 256
  EXPECT_CONTAINS(parse_error(t.bytes()),
                  "gguf: tensor 'blk.3.attn_q.weight' data ends past the end of the file");
  // An offset so large that offset + size wraps around 64 bits.
  Bytes wrap;
  wrap.header(3, 1, 0).tensor("w", {64}, 0, ~uint64_t{31}).pad(32).zeros(256);
  EXPECT_CONTAINS(parse_error(wrap.bytes()), "tensor 'w' data ends past the end of the file");
  // A tensor whose data would start in the (missing) padding before the data section.
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 1, 0).tensor("w", {0}, 0, 0).bytes()),
                  "past the end");
}

TEST(GgufReaderErrors, UnalignedOffset) {
  Bytes t;
  t.header(3, 1, 0).tensor("w", {4}, 0, 16).pad(32).zeros(64);
  EXPECT_CONTAINS(parse_error(t.bytes()),
                  "tensor 'w': data offset 16 is not a multiple of the alignment 32");
  // With general.alignment = 16 the same offset is fine.
  Bytes ok;
  ok.header(3, 1, 1).kv_u32("general.alignment", 16).tensor("w", {4}, 0, 16).pad(16).zeros(32);
  Expected<GgufFile> f = GgufFile::from_bytes(ok.bytes());
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f->alignment(), 16u);
}

TEST(GgufReaderErrors, BadAlignmentKey) {
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).kv_u32("general.alignment", 48).bytes()),
                  "general.alignment must be a power of two, got 48");
  EXPECT_CONTAINS(parse_error(Bytes().header(3, 0, 1).kv_u32("general.alignment", 0).bytes()),
                  "power of two, got 0");
  EXPECT_CONTAINS(
      parse_error(Bytes().header(3, 0, 1).str("general.alignment").u32(8).str("32").bytes()),
      "has type string");
}

TEST(GgufReaderErrors, OpenNamesThePath) {
  TempDir dir;
  const std::string path = dir.file("bad.gguf");
  std::vector<uint8_t> bytes = Bytes().header(1, 0, 0).bytes();
  ASSERT_TRUE(write_file_atomic(path, bytes.data(), bytes.size()).ok());
  Expected<GgufFile> f = GgufFile::open(path);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(),
            "gguf: " + path + ": unsupported GGUF version 1 (only versions 2 and 3 are supported)");

  Expected<GgufFile> missing = GgufFile::open(dir.file("missing.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message(),
            "gguf: " + dir.file("missing.gguf") + ": No such file or directory");
  Expected<GgufFile> d = GgufFile::open(dir.path());
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().message(), "gguf: " + dir.path() + ": is a directory");
  const std::string empty = dir.file("empty.gguf");
  ASSERT_TRUE(write_file_atomic(empty, "", 0).ok());
  EXPECT_CONTAINS(GgufFile::open(empty).status().message(), "too short");
}

// ---- accessors ----

TEST(GgufAccessors, ErrorsNameTheKey) {
  Expected<GgufFile> f = GgufFile::from_bytes(val(writer_with_every_type().to_bytes()));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->find("nope"), nullptr);
  EXPECT_EQ(f->get_uint("nope").status().message(), "gguf: key 'nope' not found");
  EXPECT_EQ(f->get_string("t.u32").status().message(),
            "gguf: key 't.u32' has type u32, expected string");
  EXPECT_CONTAINS(f->get_uint("t.string").status().message(), "key 't.string' has type string");
  EXPECT_CONTAINS(f->get_uint("t.i8").status().message(), "key 't.i8' is negative (-128)");
  EXPECT_CONTAINS(f->get_int("t.u64").status().message(), "key 't.u64' value 18446744073709551615");
  EXPECT_CONTAINS(f->get_float("t.i32").status().message(), "expected f32 or f64");
  EXPECT_CONTAINS(f->get_bool("t.u8").status().message(), "expected bool");
  EXPECT_CONTAINS(f->get_string_array("t.i32s").status().message(),
                  "key 't.i32s' has type array of i32, expected array of string");
  EXPECT_CONTAINS(f->get_int_array("t.f32s").status().message(), "array of f32");
  EXPECT_CONTAINS(f->get_int_array("t.u64s").status().message(),
                  "element 1 = 18446744073709551615");
  EXPECT_CONTAINS(f->get_float_array("t.strings").status().message(), "array of string");
  EXPECT_CONTAINS(f->get_int_array("t.bools").status().message(), "array of bool");
}

TEST(GgufAccessors, IntegerWidening) {
  GgufWriter w;
  w.set_u8("u8", 3);
  w.set_i32("pos", 12);
  w.set_i64("neg", -5);
  w.set_u64("big", uint64_t{1} << 40);
  Expected<GgufFile> f = GgufFile::from_bytes(val(w.to_bytes()));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(val(f->get_uint("u8")), 3u);
  EXPECT_EQ(val(f->get_uint("pos")), 12u);  // signed but non-negative
  EXPECT_FALSE(f->get_uint("neg").ok());
  EXPECT_EQ(val(f->get_int("neg")), -5);
  EXPECT_EQ(val(f->get_int("u8")), 3);
  EXPECT_EQ(val(f->get_int("big")), int64_t{1} << 40);
}

TEST(GgufAccessors, FormatValue) {
  EXPECT_EQ(format_gguf_value(GgufValue::scalar<uint32_t>(42)), "42");
  EXPECT_EQ(format_gguf_value(GgufValue::scalar<int8_t>(-3)), "-3");
  EXPECT_EQ(format_gguf_value(GgufValue::scalar(true)), "true");
  EXPECT_EQ(format_gguf_value(GgufValue::scalar(1.5f)), "1.5");
  EXPECT_EQ(format_gguf_value(GgufValue::string("a\"b\n")), "\"a\\\"b\\n\"");
  EXPECT_EQ(format_gguf_value(GgufValue::array(std::vector<int32_t>{1, 2, 3}), 2),
            "[1, 2, ... (3 i32)]");
  EXPECT_EQ(format_gguf_value(GgufValue::array(std::vector<std::string>{"x"})), "[\"x\"]");
}

// ---- writer errors ----

TEST(GgufWriterErrors, AddTensorValidates) {
  const std::vector<uint8_t> buf(1024);
  GgufWriter w;
  EXPECT_CONTAINS(w.add_tensor("w", {64}, 8, buf.data(), 67).message(),
                  "tensor 'w': 67 bytes given, but Q8_0 [64] takes 68");
  EXPECT_CONTAINS(w.add_tensor("w", {4}, 99, buf.data(), 4).message(), "unknown ggml type 99");
  EXPECT_CONTAINS(w.add_tensor("w", {1, 1, 1, 1, 1}, 0, buf.data(), 4).message(), "5 dims");
  EXPECT_CONTAINS(w.add_tensor("w", {}, 0, buf.data(), 4).message(), "0 dims");
  EXPECT_CONTAINS(w.add_tensor("w", {33}, 8, buf.data(), 34).message(), "not a multiple");
  EXPECT_CONTAINS(w.add_tensor(std::string(64, 'n'), {1}, 0, buf.data(), 4).message(),
                  "at most 63");
  ASSERT_TRUE(w.add_tensor("w", {1}, 0, buf.data(), 4).ok());
  EXPECT_CONTAINS(w.add_tensor("w", {1}, 0, buf.data(), 4).message(), "duplicate tensor name 'w'");
  EXPECT_EQ(w.n_tensors(), 1u);
}

TEST(GgufWriterErrors, BadAlignmentLeavesNoFile) {
  TempDir dir;
  GgufWriter w;
  w.set_u32("general.alignment", 24);
  const std::string path = dir.file("x.gguf");
  Status st = w.write(path);
  EXPECT_CONTAINS(st.message(), "gguf: " + path + ": general.alignment must be a u32 power of two");
  EXPECT_TRUE(dir.entries().empty());
  w.set_u64("general.alignment", 32);  // right value, wrong type
  EXPECT_FALSE(w.write(path).ok());
  EXPECT_TRUE(dir.entries().empty());
}

TEST(GgufWriterErrors, MissingDirectoryLeavesNoFile) {
  TempDir dir;
  const std::string path = dir.file("no/such/dir/x.gguf");
  Status st = writer_with_every_type().write(path);
  EXPECT_FALSE(st.ok());
  EXPECT_CONTAINS(st.message(), "gguf: " + path + ": cannot create a temp file");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_TRUE(dir.entries().empty());
}

// ---- atomic files ----

TEST(AtomicFile, WritesAndReplaces) {
  TempDir dir;
  const std::string path = dir.file("f.bin");
  ASSERT_TRUE(write_file_atomic(path, "old", 3).ok());
  EXPECT_EQ(val(read_file(path)), "old");
  ASSERT_TRUE(write_file_atomic(path, "new content", 11).ok());
  EXPECT_EQ(val(read_file(path)), "new content");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"f.bin"});
}

TEST(AtomicFile, FailingWriterLeavesNothing) {
  TempDir dir;
  const std::string path = dir.file("f.bin");
  Status st = write_file_atomic(path, [](std::FILE* f) {
    std::fputs("partial", f);
    return Status::Error("callback gave up");
  });
  EXPECT_EQ(st.message(), path + ": callback gave up");
  EXPECT_TRUE(dir.entries().empty());  // neither the file nor a temp file

  // An existing file keeps its old content when a rewrite fails.
  ASSERT_TRUE(write_file_atomic(path, "keep me", 7).ok());
  st = write_file_atomic(path, [](std::FILE* f) {
    std::fputs("partial", f);
    return Status::Error("no");
  });
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(val(read_file(path)), "keep me");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"f.bin"});
}

TEST(AtomicFile, BadTargets) {
  TempDir dir;
  const std::string missing_dir = dir.file("nope/f.bin");
  EXPECT_CONTAINS(write_file_atomic(missing_dir, "x", 1).message(), missing_dir + ": ");
  EXPECT_FALSE(fs::exists(missing_dir));
  // The target is a directory: rename fails, the directory and its content stay.
  fs::create_directory(dir.file("sub"));
  ASSERT_TRUE(write_file_atomic(dir.file("sub/inner"), "x", 1).ok());
  EXPECT_FALSE(write_file_atomic(dir.file("sub"), "x", 1).ok());
  EXPECT_TRUE(fs::is_directory(dir.file("sub")));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"sub"});
  EXPECT_FALSE(write_file_atomic("", "x", 1).ok());
  EXPECT_FALSE(write_file_atomic(dir.path() + "/", "x", 1).ok());
}

TEST(AtomicFile, ReadFileErrors) {
  TempDir dir;
  EXPECT_EQ(read_file(dir.file("missing")).status().message(),
            dir.file("missing") + ": No such file or directory");
  EXPECT_EQ(read_file(dir.path()).status().message(), dir.path() + ": is a directory");
  const std::string binary("a\0b", 3);
  ASSERT_TRUE(write_file_atomic(dir.file("b"), binary.data(), binary.size()).ok());
  EXPECT_EQ(val(read_file(dir.file("b"))), binary);
  if (::geteuid() != 0) {  // root reads anything
    ASSERT_EQ(::chmod(dir.file("b").c_str(), 0), 0);
    EXPECT_CONTAINS(read_file(dir.file("b")).status().message(), "Permission denied");
  }
}

TEST(AtomicFile, MapEmptyAndNonEmptyFiles) {
  TempDir dir;
  ASSERT_TRUE(write_file_atomic(dir.file("empty"), "", 0).ok());
  Expected<MappedFile> empty = MappedFile::open(dir.file("empty"));
  ASSERT_TRUE(empty.ok()) << empty.status().message();
  EXPECT_EQ(empty->size(), 0u);
  ASSERT_TRUE(write_file_atomic(dir.file("f"), "hello", 5).ok());
  Expected<MappedFile> m = MappedFile::open(dir.file("f"));
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), m->size()), "hello");
  EXPECT_EQ(MappedFile::open(dir.path()).status().message(), dir.path() + ": is a directory");
}

// ---- cross-checks with gguf-py ----

const std::string kFixtures = std::string(LONGCTX_SOURCE_DIR) + "/tests/io/fixtures/";

TEST(GgufPyFixture, ReadsWhatGgufPyWrote) {
  Expected<std::string> text = read_file(kFixtures + "gguf_py_fixture.json");
  ASSERT_TRUE(text.ok()) << text.status().message();
  const nlohmann::json want = nlohmann::json::parse(*text);
  Expected<GgufFile> f = GgufFile::open(kFixtures + "gguf_py_fixture.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();

  EXPECT_EQ(f->version(), want["version"].get<uint32_t>());
  EXPECT_EQ(f->alignment(), want["alignment"].get<uint64_t>());
  EXPECT_EQ(f->data_offset(), want["data_offset"].get<uint64_t>());
  EXPECT_EQ(f->file_size(), want["file_size"].get<uint64_t>());

  const auto& meta = want["metadata"];
  ASSERT_EQ(f->metadata().size(), meta.size());
  for (size_t k = 0; k < meta.size(); ++k) {
    const std::string key = meta[k]["key"];
    const GgufKv& kv = f->metadata()[k];
    ASSERT_EQ(kv.key, key) << "metadata order differs at " << k;
    const std::string type = meta[k]["type"];
    EXPECT_EQ(gguf_type_name(kv.value.type()), type) << key;
    const nlohmann::json& v = meta[k]["value"];
    if (type == "array") {
      const std::string elem = meta[k]["elem_type"];
      ASSERT_EQ(gguf_type_name(kv.value.elem_type()), elem) << key;
      ASSERT_EQ(kv.value.size(), v.size()) << key;
      for (size_t i = 0; i < v.size(); ++i) {
        const GgufType e = kv.value.elem_type();
        if (e == GgufType::kString)
          EXPECT_EQ(kv.value.strings()[i], v[i].get<std::string>());
        else if (e == GgufType::kBool)
          EXPECT_EQ(kv.value.bool_at(i), v[i].get<bool>());
        else if (gguf_type_is_unsigned(e))
          EXPECT_EQ(kv.value.uint_at(i), v[i].get<uint64_t>());
        else if (gguf_type_is_signed(e))
          EXPECT_EQ(kv.value.int_at(i), v[i].get<int64_t>());
        else
          EXPECT_EQ(kv.value.float_at(i), v[i].get<double>()) << key << "[" << i << "]";
      }
    } else if (type == "string") {
      EXPECT_EQ(val(f->get_string(key)), v.get<std::string>());
    } else if (type == "bool") {
      EXPECT_EQ(val(f->get_bool(key)), v.get<bool>());
    } else if (type == "f32" || type == "f64") {
      EXPECT_EQ(val(f->get_float(key)), v.get<double>()) << key;
    } else if (type[0] == 'u') {
      EXPECT_EQ(val(f->get_uint(key)), v.get<uint64_t>()) << key;
    } else {
      EXPECT_EQ(val(f->get_int(key)), v.get<int64_t>()) << key;
    }
  }

  const auto& tensors = want["tensors"];
  ASSERT_EQ(f->tensors().size(), tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& wt = tensors[k];
    const GgufTensorInfo& t = f->tensors()[k];
    EXPECT_EQ(t.name, wt["name"].get<std::string>());
    EXPECT_EQ(t.type, wt["type"].get<uint32_t>());
    EXPECT_EQ(t.dims, wt["dims"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.n_bytes, wt["n_bytes"].get<uint64_t>());
    EXPECT_EQ(f->data_offset() + t.offset, wt["file_offset"].get<uint64_t>()) << t.name;
    EXPECT_EQ(tensor_bytes(t), from_hex(wt["bytes_hex"])) << t.name;
    const std::vector<double> values = wt["values"];
    ASSERT_EQ(values.size(), t.n_elements);
    for (size_t i = 0; i < values.size(); ++i) {
      if (t.type == 0) {  // F32
        float x;
        std::memcpy(&x, t.data + 4 * i, 4);
        EXPECT_EQ(x, static_cast<float>(values[i]));
      } else if (t.type == 1) {  // F16
        EXPECT_EQ(half_to_float(static_cast<uint16_t>(t.data[2 * i] | t.data[2 * i + 1] << 8)),
                  static_cast<float>(values[i]));
      } else if (t.type == 8) {  // Q8_0: 34-byte blocks of f16 scale d + 32 int8 q; x = d * q
        const uint8_t* block = t.data + (i / 32) * 34;
        const float d = half_to_float(static_cast<uint16_t>(block[0] | block[1] << 8));
        const float x = d * static_cast<float>(static_cast<int8_t>(block[2 + i % 32]));
        EXPECT_EQ(x, static_cast<float>(wt["dequantized"][i].get<double>())) << i;
        EXPECT_NEAR(x, values[i], 5.0 / 127) << i;  // |x| <= 5 in the fixture
      }
    }
  }
}

// The file behind tests/io/fixtures/longctx_writer_fixture.gguf. make_gguf_fixture.py
// --check-ours reads it with gguf-py and asserts the same values; keep both in sync.
struct GoldenData {
  std::vector<float> a = {0, 1, 2, 3, 4, 5};
  std::vector<uint16_t> b = {0x3c00, 0xc000, 0x3800, 0x0000, 0x7bff};  // 1, -2, 0.5, 0, 65504
  std::vector<uint8_t> c;
  GoldenData() {
    for (int row = 0; row < 2; ++row) {
      c.push_back(0x00);  // d = 0.5 (f16 0x3800)
      c.push_back(0x38);
      for (int i = 0; i < 32; ++i) c.push_back(static_cast<uint8_t>(static_cast<int8_t>(i - 16)));
    }
  }
};

GgufWriter make_golden_writer(const GoldenData& g) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_u8("longctx.u8", 7);
  w.set_i8("longctx.i8", -7);
  w.set_u16("longctx.u16", 65535);
  w.set_i16("longctx.i16", -32768);
  w.set_u32("longctx.u32", 123456789);
  w.set_i32("longctx.i32", -123456789);
  w.set_u64("longctx.u64", std::numeric_limits<uint64_t>::max());
  w.set_i64("longctx.i64", std::numeric_limits<int64_t>::min());
  w.set_f32("longctx.f32", 1.5f);
  w.set_f64("longctx.f64", -0.125);
  w.set_bool("longctx.bool", true);
  w.set_string("longctx.string", "h\xc3\xa9llo\nworld");
  w.set_string_array("tokenizer.ggml.tokens", {"a", "", "\xc3\xbcn\xc3\xaf"});
  w.set_i32_array("tokenizer.ggml.token_type", {1, -2, 2147483647});
  w.set_f32_array("tokenizer.ggml.scores", {0.25f, -8.0f});
  w.set("longctx.u8_array", GgufValue::array(std::vector<uint8_t>{1, 2, 3}));
  w.set("longctx.bool_array", GgufValue::array(std::vector<bool>{true, false}));
  w.set("longctx.f64_array", GgufValue::array(std::vector<double>{1e300}));
  w.set("longctx.u64_array",
        GgufValue::array(std::vector<uint64_t>{std::numeric_limits<uint64_t>::max(), 0}));
  EXPECT_TRUE(w.add_tensor("a", {3, 2}, 0, g.a.data(), g.a.size() * 4).ok());
  EXPECT_TRUE(w.add_tensor("b", {5}, 1, g.b.data(), g.b.size() * 2).ok());
  EXPECT_TRUE(w.add_tensor("c", {32, 2}, 8, g.c.data(), g.c.size()).ok());
  return w;
}

// Set LONGCTX_UPDATE_FIXTURES=1 to rewrite the golden file and the fuzz seed corpus after an
// intended writer change (then run make_gguf_fixture.py --check-ours).
void update_fixtures(const std::vector<uint8_t>& golden) {
  const std::string root = LONGCTX_SOURCE_DIR;
  ASSERT_TRUE(
      write_file_atomic(kFixtures + "longctx_writer_fixture.gguf", golden.data(), golden.size())
          .ok());
  const std::string corpus = root + "/fuzz/corpus/gguf/";
  fs::create_directories(corpus);
  auto seed = [&](const std::string& name, const GgufWriter& w) {
    std::vector<uint8_t> b = val(w.to_bytes());
    ASSERT_TRUE(write_file_atomic(corpus + name, b.data(), b.size()).ok());
  };
  ASSERT_TRUE(write_file_atomic(corpus + "golden.gguf", golden.data(), golden.size()).ok());
  seed("empty.gguf", GgufWriter());
  GgufWriter strings;
  strings.set_string_array("tokenizer.ggml.merges", {"a b", "ab c"});
  strings.set_string("tokenizer.chat_template", "{{ x }}");
  seed("strings.gguf", strings);
  static const std::vector<uint8_t> q(34 * 2 + 18 + 144, 1);
  GgufWriter quant;
  quant.set_u32("general.alignment", 64);
  ASSERT_TRUE(quant.add_tensor("q8", {64}, 8, q.data(), 68).ok());
  ASSERT_TRUE(quant.add_tensor("q4", {32}, 2, q.data(), 18).ok());
  ASSERT_TRUE(quant.add_tensor("q4k", {256}, 12, q.data(), 144).ok());
  seed("quant_align64.gguf", quant);
}

TEST(WriterGolden, MatchesCommittedFixture) {
  GoldenData g;
  const std::vector<uint8_t> bytes = val(make_golden_writer(g).to_bytes());
  if (std::getenv("LONGCTX_UPDATE_FIXTURES") != nullptr) update_fixtures(bytes);
  Expected<std::string> golden = read_file(kFixtures + "longctx_writer_fixture.gguf");
  ASSERT_TRUE(golden.ok()) << golden.status().message();
  EXPECT_EQ(std::vector<uint8_t>(golden->begin(), golden->end()), bytes)
      << "the writer's output changed; if intended, rerun with LONGCTX_UPDATE_FIXTURES=1 and "
         "check with tests/io/make_gguf_fixture.py --check-ours";

  Expected<GgufFile> f = GgufFile::from_bytes(bytes);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(val(f->get_string("longctx.string")), "h\xc3\xa9llo\nworld");
  EXPECT_EQ(f->tensors()[2].dims, (std::vector<int64_t>{32, 2}));
}

}  // namespace
}  // namespace longctx::io
