// safetensors reader tests. Expectations come from outside the code under test: files written by
// Hugging Face's `safetensors` package with values computed by numpy
// (tests/io/make_safetensors_fixture.py -> tests/io/fixtures/st_*), and byte layouts built here
// by hand from the format (u64 header length, JSON header, byte buffer).
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/check.h"
#include "io/atomic_file.h"
#include "quant/formats.h"

#ifndef LONGCTX_SOURCE_DIR
#error "LONGCTX_SOURCE_DIR must name the repository root"
#endif

namespace longctx::io {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

const std::string kFixtures = std::string(LONGCTX_SOURCE_DIR) + "/tests/io/fixtures/";

// ---- helpers ----

// A file: u64 little-endian header length, the header text, the buffer.
std::vector<uint8_t> make_file(const std::string& header, const std::vector<uint8_t>& buffer = {}) {
  std::vector<uint8_t> out;
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<uint8_t>(uint64_t{header.size()} >> (8 * k)));
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), buffer.begin(), buffer.end());
  return out;
}

// A header length field of `n` followed by `rest`.
std::vector<uint8_t> with_length(uint64_t n, const std::string& rest) {
  std::vector<uint8_t> out;
  for (int k = 0; k < 8; ++k) out.push_back(static_cast<uint8_t>(n >> (8 * k)));
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

std::string entry(const std::string& dtype, const std::string& shape, uint64_t begin, uint64_t end) {
  return "{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

// Unwraps an Expected; an error fails the test (the exception ends it, and gtest reports it).
template <typename T>
T val(Expected<T> e) {
  if (!e.ok()) throw std::runtime_error("unexpected error: " + e.status().message());
  return std::move(e).value();
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  Expected<SafetensorsFile> f = SafetensorsFile::from_bytes(bytes);
  EXPECT_FALSE(f.ok()) << "parsed a file that should have been rejected";
  if (f.ok()) return "";
  const std::string msg = f.status().message();
  EXPECT_EQ(msg.rfind("safetensors: ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << "error is not one line: " << msg;
  return msg;
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::vector<uint8_t> from_hex(const std::string& hex) {
  std::vector<uint8_t> out;
  for (size_t k = 0; k + 1 < hex.size(); k += 2) {
    out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(k, 2), nullptr, 16)));
  }
  return out;
}

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::string s = val(read_file(path));
  return std::vector<uint8_t>(s.begin(), s.end());
}

json read_json(const std::string& path) { return json::parse(val(read_file(path))); }

class TempDir {
 public:
  TempDir() {
    std::string tmpl = fs::path(testing::TempDir()) / "safetensors_test_XXXXXX";
    CHECK(::mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
  void write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    CHECK(write_file_atomic(file(name), bytes.data(), bytes.size()).ok());
  }
  void write(const std::string& name, const std::string& text) const {
    CHECK(write_file_atomic(file(name), text.data(), text.size()).ok());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Checks one tensor against its description in st_fixture.json: name, dtype, shape, offsets,
// bytes, and values (F32/F16/BF16 decoded by quant::dequantize_row, I64 read directly).
void expect_tensor(const SafetensorsTensor& t, const json& e) {
  SCOPED_TRACE(t.name);
  EXPECT_EQ(t.name, e["name"].get<std::string>());
  EXPECT_EQ(t.dtype, e["dtype"].get<std::string>());
  EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
  EXPECT_EQ(t.n_elements, e["n_elements"].get<uint64_t>());
  EXPECT_EQ(t.n_bytes, e["n_bytes"].get<uint64_t>());
  EXPECT_EQ(t.offset, e["offset"].get<uint64_t>());
  ASSERT_NE(t.data, nullptr);
  EXPECT_EQ(std::vector<uint8_t>(t.data, t.data + t.n_bytes), from_hex(e["bytes_hex"].get<std::string>()));
  const uint32_t expected_type = t.dtype == "F32"    ? kF32
                                 : t.dtype == "F16"  ? kF16
                                 : t.dtype == "BF16" ? kBF16
                                                     : kSafetensorsNoGgmlType;
  EXPECT_EQ(t.type, expected_type);
  if (e.contains("values")) {
    const auto values = e["values"].get<std::vector<double>>();
    ASSERT_EQ(values.size(), t.n_elements);
    ASSERT_NE(t.type, kSafetensorsNoGgmlType);
    std::vector<float> got(t.n_elements);
    if (t.n_elements > 0) {
      ASSERT_TRUE(quant::dequantize_row(t.type, t.data, got.data(), static_cast<int64_t>(t.n_elements)).ok());
    }
    for (size_t i = 0; i < values.size(); ++i) {
      EXPECT_EQ(got[i], static_cast<float>(values[i])) << i;  // every value is exact in its dtype
      EXPECT_EQ(std::signbit(got[i]), std::signbit(values[i])) << i;
    }
  } else {
    const auto ints = e["ints"].get<std::vector<int64_t>>();
    ASSERT_EQ(t.dtype, "I64");
    ASSERT_EQ(ints.size() * 8, t.n_bytes);
    for (size_t i = 0; i < ints.size(); ++i) {
      int64_t v;
      std::memcpy(&v, t.data + 8 * i, 8);
      EXPECT_EQ(v, ints[i]) << i;
    }
  }
}

// ---- the fixture written by the reference writer ----

TEST(SafetensorsFixture, ReadsEveryTensor) {
  const json expected = read_json(kFixtures + "st_fixture.json");
  const std::string path = kFixtures + "st_fixture.safetensors";
  SafetensorsFile f = val(SafetensorsFile::open(path));
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.header_bytes(), expected["header_bytes"].get<uint64_t>());
  EXPECT_EQ(f.data_offset(), 8 + expected["header_bytes"].get<uint64_t>());
  EXPECT_EQ(f.file_size(), expected["file_size"].get<uint64_t>());
  EXPECT_EQ(f.metadata(), (expected["metadata"].get<std::map<std::string, std::string>>()));
  EXPECT_EQ(f.metadata().at("source"), "longctx make_safetensors_fixture.py \xe2\x9c\x93");

  const json& tensors = expected["tensors"];
  ASSERT_EQ(f.tensors().size(), tensors.size());
  for (size_t k = 0; k < tensors.size(); ++k) {
    expect_tensor(f.tensors()[k], tensors[k]);  // same order: file order
    EXPECT_EQ(f.find(tensors[k]["name"].get<std::string>()), &f.tensors()[k]);
  }
  EXPECT_EQ(f.find("model.nope"), nullptr);
  EXPECT_EQ(f.find(""), nullptr);

  // The cases the fixture was made to hold.
  const SafetensorsTensor* scalar = f.find("model.scale");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->n_elements, 1u);
  const SafetensorsTensor* empty = f.find("model.empty");
  ASSERT_NE(empty, nullptr);
  EXPECT_EQ(empty->shape, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(empty->n_bytes, 0u);
  EXPECT_EQ(f.find("model.proj.weight")->type, kBF16);
  EXPECT_EQ(f.find("model.positions")->type, kSafetensorsNoGgmlType);
}

TEST(SafetensorsFixture, FromBytesMatchesOpen) {
  const std::vector<uint8_t> bytes = read_bytes(kFixtures + "st_fixture.safetensors");
  SafetensorsFile a = val(SafetensorsFile::open(kFixtures + "st_fixture.safetensors"));
  SafetensorsFile b = val(SafetensorsFile::from_bytes(bytes));
  EXPECT_TRUE(b.path().empty());
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t k = 0; k < a.tensors().size(); ++k) {
    const SafetensorsTensor& x = a.tensors()[k];
    const SafetensorsTensor& y = b.tensors()[k];
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.shape, y.shape);
    EXPECT_EQ(x.offset, y.offset);
    EXPECT_EQ(std::memcmp(x.data, y.data, x.n_bytes), 0);
  }
  EXPECT_EQ(a.metadata(), b.metadata());
}

TEST(SafetensorsFixture, MoveKeepsPointers) {
  SafetensorsFile a = val(SafetensorsFile::from_bytes(read_bytes(kFixtures + "st_fixture.safetensors")));
  const SafetensorsTensor* t = a.find("model.embed.weight");
  const uint8_t* data = t->data;
  SafetensorsFile b = std::move(a);
  EXPECT_EQ(b.find("model.embed.weight"), t);
  EXPECT_EQ(b.find("model.embed.weight")->data, data);
  SafetensorsFile c = val(SafetensorsFile::from_bytes(make_file("{}")));
  c = std::move(b);
  EXPECT_EQ(c.find("model.embed.weight")->data, data);
  float x;
  std::memcpy(&x, data, 4);
  EXPECT_EQ(x, -1.0f);
}

TEST(SafetensorsFixture, OpenErrorsNameThePath) {
  TempDir dir;
  Expected<SafetensorsFile> missing = SafetensorsFile::open(dir.file("nope.safetensors"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().message().rfind("safetensors: " + dir.file("nope.safetensors") + ": ", 0), 0u)
      << missing.status().message();
  dir.write("bad.safetensors", make_file("{\"a\":" + entry("F32", "[2]", 0, 8) + "}", {1, 2, 3}));
  Expected<SafetensorsFile> bad = SafetensorsFile::open(dir.file("bad.safetensors"));
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message().rfind("safetensors: " + dir.file("bad.safetensors") + ": ", 0), 0u)
      << bad.status().message();
  EXPECT_CONTAINS(bad.status().message(), "past the end of the byte buffer");
  dir.write("empty.safetensors", std::string());
  EXPECT_CONTAINS(SafetensorsFile::open(dir.file("empty.safetensors")).status().message(), "too short");
  EXPECT_CONTAINS(SafetensorsFile::open(dir.path()).status().message(), "directory");
}

// ---- sharded models ----

TEST(SafetensorsModel, ShardedFixture) {
  const json expected = read_json(kFixtures + "st_fixture.json")["model"]["tensors"];
  const std::string dir = kFixtures + "st_model";
  for (const std::string& path : {dir, dir + "/model.safetensors.index.json"}) {
    SCOPED_TRACE(path);
    SafetensorsModel m = val(SafetensorsModel::open(path));
    EXPECT_EQ(m.path(), path);
    ASSERT_EQ(m.files().size(), 2u);
    EXPECT_EQ(fs::path(m.files()[0].path()).filename(), "model-00001-of-00002.safetensors");
    EXPECT_EQ(fs::path(m.files()[1].path()).filename(), "model-00002-of-00002.safetensors");
    const std::vector<const SafetensorsTensor*> all = m.tensors();
    ASSERT_EQ(all.size(), expected.size());
    for (size_t k = 0; k < expected.size(); ++k) {
      const std::string name = expected[k]["name"].get<std::string>();
      expect_tensor(*all[k], expected[k]);  // shards in name order, each in file order
      const SafetensorsTensor* t = m.find(name);
      ASSERT_EQ(t, all[k]);
      const std::string shard = expected[k]["shard"].get<std::string>();
      const SafetensorsFile& owner = m.files()[shard == "model-00001-of-00002.safetensors" ? 0 : 1];
      EXPECT_EQ(owner.find(name), t);
    }
    EXPECT_EQ(m.find("nope"), nullptr);
    // Moving the model keeps every pointer.
    const SafetensorsTensor* head = m.find("lm_head");
    SafetensorsModel moved = std::move(m);
    EXPECT_EQ(moved.find("lm_head"), head);
  }
}

TEST(SafetensorsModel, SingleFile) {
  const std::vector<uint8_t> bytes = read_bytes(kFixtures + "st_fixture.safetensors");
  TempDir dir;
  dir.write("model.safetensors", bytes);
  dir.write("other.safetensors", bytes);
  for (const std::string& path : {dir.path(), dir.file("model.safetensors"), dir.file("other.safetensors")}) {
    SCOPED_TRACE(path);
    SafetensorsModel m = val(SafetensorsModel::open(path));
    ASSERT_EQ(m.files().size(), 1u);
    EXPECT_EQ(m.tensors().size(), 6u);
    ASSERT_NE(m.find("model.norm.weight"), nullptr);
    EXPECT_EQ(m.find("model.norm.weight")->dtype, "F16");
  }
  // Both in one directory: model.safetensors wins, as in transformers.
  dir.write("model.safetensors.index.json", std::string("not json"));
  EXPECT_EQ(val(SafetensorsModel::open(dir.path())).files().size(), 1u);
}

// A model dir with shards a.safetensors (x, y) and b.safetensors (z), and the given index text.
class ShardedDir {
 public:
  ShardedDir() {
    dir.write("a.safetensors", make_file("{\"x\":" + entry("F32", "[1]", 0, 4) + ",\"y\":" +
                                             entry("U8", "[2]", 4, 6) + "}",
                                         {0, 0, 128, 63, 7, 9}));
    dir.write("b.safetensors", make_file("{\"z\":" + entry("I32", "[]", 0, 4) + "}", {1, 0, 0, 0}));
  }
  std::string open_error(const std::string& index) const {
    dir.write("model.safetensors.index.json", index);
    Expected<SafetensorsModel> m = SafetensorsModel::open(dir.path());
    EXPECT_FALSE(m.ok()) << index;
    if (m.ok()) return "";
    const std::string msg = m.status().message();
    EXPECT_EQ(msg.rfind("safetensors: ", 0), 0u) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    return msg;
  }
  TempDir dir;
};

TEST(SafetensorsModel, IndexChecks) {
  ShardedDir d;
  d.dir.write("model.safetensors.index.json",
              std::string(R"({"metadata":{"total_size":10},"weight_map":{"x":"a.safetensors","z":"b.safetensors"}})"));
  SafetensorsModel m = val(SafetensorsModel::open(d.dir.path()));
  EXPECT_EQ(m.tensors().size(), 3u);  // y is in a.safetensors without being listed: kept
  ASSERT_NE(m.find("y"), nullptr);
  ASSERT_NE(m.find("z"), nullptr);
  EXPECT_EQ(m.find("z")->data[0], 1);

  const std::string index = d.dir.file("model.safetensors.index.json");
  EXPECT_CONTAINS(d.open_error("not json"), "not valid JSON");
  EXPECT_EQ(d.open_error("not json").rfind("safetensors: " + index + ": ", 0), 0u);
  EXPECT_CONTAINS(d.open_error("[]"), "expected an object");
  EXPECT_CONTAINS(d.open_error(R"({"metadata":{}})"), "no \"weight_map\"");
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":[]})"), "\"weight_map\" is a JSON array");
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{}})"), "lists no tensors");
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{"x":1}})"), "expected a file name");
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{"x":"a.safetensors","x":"b.safetensors"}})"), "duplicate key 'x'");
  for (const char* bad : {"../a.safetensors", "sub/a.safetensors", "/etc/passwd", "..", ".", "", "a\\\\b"}) {
    const std::string msg = d.open_error(std::string(R"({"weight_map":{"x":")") + bad + "\"}}");
    EXPECT_CONTAINS(msg, "not a plain file name");
  }
  // A missing shard: the shard's own open error.
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{"x":"c.safetensors"}})"), "c.safetensors: No such file");
  // A tensor the index puts in the wrong shard.
  const std::string wrong = d.open_error(R"({"weight_map":{"x":"a.safetensors","z":"a.safetensors"}})");
  EXPECT_CONTAINS(wrong, "tensor 'z' is listed in shard 'a.safetensors', which does not hold it");
  EXPECT_EQ(wrong.rfind("safetensors: " + index + ": ", 0), 0u) << wrong;
  // A tensor name in two shards.
  d.dir.write("c.safetensors", make_file("{\"y\":" + entry("U8", "[0]", 0, 0) + "}"));
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{"x":"a.safetensors","y":"c.safetensors"}})"), "'y' is also in");
  // A corrupt shard.
  d.dir.write("c.safetensors", std::string("junk"));
  EXPECT_CONTAINS(d.open_error(R"({"weight_map":{"x":"a.safetensors","q":"c.safetensors"}})"), "too short");
  // An index next to nothing.
  TempDir empty;
  Expected<SafetensorsModel> none = SafetensorsModel::open(empty.path());
  ASSERT_FALSE(none.ok());
  EXPECT_CONTAINS(none.status().message(), "neither model.safetensors nor model.safetensors.index.json");
  EXPECT_CONTAINS(SafetensorsModel::open(empty.file("x.json")).status().message(), "No such file");
}

// ---- hand-made files: what must parse ----

TEST(SafetensorsParse, EdgeCasesThatAreValid) {
  // No tensors at all, with and without padding.
  EXPECT_TRUE(SafetensorsFile::from_bytes(make_file("{}")).ok());
  EXPECT_TRUE(SafetensorsFile::from_bytes(make_file("{}      ")).ok());
  EXPECT_TRUE(SafetensorsFile::from_bytes(make_file(" \n{}\t ")).ok());
  // __metadata__ null (the reference reader's Option), extra keys in an entry (ignored).
  SafetensorsFile f = val(SafetensorsFile::from_bytes(make_file(
      R"({"__metadata__":null,"t":{"dtype":"U8","shape":[2],"data_offsets":[0,2],"extra":[{"x":1}]}})", {5, 6})));
  EXPECT_TRUE(f.metadata().empty());
  ASSERT_EQ(f.tensors().size(), 1u);
  EXPECT_EQ(f.tensors()[0].data[1], 6);
  // Header order need not be file order; zero-size tensors may sit anywhere on the chain.
  f = val(SafetensorsFile::from_bytes(
      make_file("{\"b\":" + entry("I16", "[1]", 2, 4) + ",\"a\":" + entry("I16", "[1]", 0, 2) + ",\"z\":" +
                    entry("F32", "[3, 0]", 2, 2) + ",\"e\":" + entry("F64", "[0]", 4, 4) + "}",
                {1, 0, 2, 0})));
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensors()[0].name, "a");
  EXPECT_EQ(f.tensors()[1].name, "z");
  EXPECT_EQ(f.tensors()[2].name, "b");
  EXPECT_EQ(f.tensors()[3].name, "e");
  EXPECT_EQ(f.tensors()[2].data[0], 2);
  // The biggest allowed element count, with a zero dimension keeping the bytes at 0.
  EXPECT_TRUE(SafetensorsFile::from_bytes(make_file("{\"t\":" + entry("U8", "[0, 4611686018427387904]", 0, 0) + "}"))
                  .ok());
  // Every dtype, with its size.
  const std::pair<const char*, uint64_t> dtypes[] = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"I32", 4},     {"I16", 2},     {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
  };
  std::string header = "{";
  uint64_t offset = 0;
  for (const auto& [name, size] : dtypes) {
    EXPECT_EQ(safetensors_dtype_size(name), size) << name;
    header += std::string(offset ? "," : "") + "\"" + name + "\":" + entry(name, "[3]", offset, offset + 3 * size);
    offset += 3 * size;
  }
  f = val(SafetensorsFile::from_bytes(make_file(header + "}", std::vector<uint8_t>(offset, 1))));
  ASSERT_EQ(f.tensors().size(), std::size(dtypes));
  for (const auto& [name, size] : dtypes) {
    ASSERT_NE(f.find(name), nullptr) << name;
    EXPECT_EQ(f.find(name)->n_bytes, 3 * size) << name;
    EXPECT_EQ(f.find(name)->type, safetensors_ggml_type(name)) << name;
  }
  EXPECT_EQ(safetensors_ggml_type("F32"), kF32);
  EXPECT_EQ(safetensors_ggml_type("F16"), kF16);
  EXPECT_EQ(safetensors_ggml_type("BF16"), kBF16);
  EXPECT_EQ(safetensors_ggml_type("F64"), kSafetensorsNoGgmlType);
  EXPECT_EQ(safetensors_dtype_size("f32"), 0u);
}

// ---- hand-made files: what must be rejected, and the word that says why ----

TEST(SafetensorsParse, RejectsCorruptFiles) {
  const std::string ok_t = entry("F32", "[2]", 0, 8);
  const std::vector<uint8_t> eight(8, 0);
  struct Case {
    const char* what;
    std::vector<uint8_t> bytes;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"empty file", {}, "too short"},
      {"7 bytes", {1, 0, 0, 0, 0, 0, 0}, "too short"},
      {"header length 0", with_length(0, ""), "header length is 0"},
      {"header length 0 with data", with_length(0, "{}"), "header length is 0"},
      {"header over 100 MiB", with_length((uint64_t{100} << 20) + 1, "{}"), "exceeds the limit"},
      {"header length 2^64-1", with_length(~uint64_t{0}, "{}"), "exceeds the limit"},
      {"header past the end", with_length(3, "{}"), "runs past the end of the file"},
      {"not JSON", make_file("hello"), "not valid JSON"},
      {"truncated JSON", make_file("{\"a\":"), "not valid JSON"},
      {"garbage after JSON", make_file("{} x"), "not valid JSON"},
      {"NUL padding", make_file(std::string("{}\0\0", 4)), "NUL byte at byte 2"},
      {"NUL then junk", make_file(std::string("{}\0junk", 7)), "NUL byte"},
      {"NUL in a string", make_file(std::string("{\"a\0\":1}", 8)), "NUL byte"},
      {"invalid UTF-8", make_file("{\"\xff\":1}"), "not valid JSON"},
      {"comment", make_file("{} // c"), "not valid JSON"},
      {"array header", make_file("[]"), "expected an object"},
      {"number header", make_file("5"), "header is a JSON number"},
      {"string header", make_file("\"x\""), "header is a JSON string"},
      {"deep nesting", make_file(std::string(100, '[') + std::string(100, ']')), "nested deeper"},
      {"entry not an object", make_file("{\"t\":[1]}"), "tensor 't' is a JSON array, expected an object"},
      {"missing dtype", make_file(R"({"t":{"shape":[2],"data_offsets":[0,8]}})", eight), "missing \"dtype\""},
      {"missing shape", make_file(R"({"t":{"dtype":"F32","data_offsets":[0,8]}})", eight), "missing \"shape\""},
      {"missing offsets", make_file(R"({"t":{"dtype":"F32","shape":[2]}})", eight), "missing \"data_offsets\""},
      {"dtype not a string", make_file(R"({"t":{"dtype":1,"shape":[2],"data_offsets":[0,8]}})", eight),
       "\"dtype\" is a JSON number"},
      {"unknown dtype", make_file("{\"t\":" + entry("F128", "[2]", 0, 8) + "}", eight), "unknown dtype 'F128'"},
      {"lower-case dtype", make_file("{\"t\":" + entry("f32", "[2]", 0, 8) + "}", eight), "unknown dtype"},
      {"shape not an array", make_file("{\"t\":" + entry("F32", "2", 0, 8) + "}", eight), "\"shape\" is a JSON"},
      {"float dim", make_file("{\"t\":" + entry("F32", "[2.0]", 0, 8) + "}", eight), "expected an integer"},
      {"string dim", make_file("{\"t\":" + entry("F32", "[\"2\"]", 0, 8) + "}", eight), "expected an integer"},
      {"negative dim", make_file("{\"t\":" + entry("F32", "[-2]", 0, 8) + "}", eight), "negative dimension"},
      {"huge dim", make_file("{\"t\":" + entry("U8", "[9223372036854775808]", 0, 8) + "}", eight), "too large"},
      {"dim past 2^64", make_file("{\"t\":" + entry("U8", "[18446744073709551616]", 0, 8) + "}", eight),
       "expected an integer"},
      {"element overflow", make_file("{\"t\":" + entry("U8", "[4294967296, 4294967296, 0]", 0, 0) + "}"),
       "element count overflows"},
      {"elements over 2^62", make_file("{\"t\":" + entry("U8", "[2, 2305843009213693953]", 0, 0) + "}"),
       "element count overflows"},
      {"offsets not an array", make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":8}})", eight),
       "\"data_offsets\" must be an array of two integers"},
      {"three offsets", make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", eight),
       "\"data_offsets\" must be an array of two integers"},
      {"negative offset", make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,8]}})", eight),
       "data_offsets[0] is negative"},
      {"float offset", make_file(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8.5]}})", eight),
       "data_offsets[1] is a JSON number"},
      {"begin > end", make_file("{\"t\":" + entry("F32", "[0]", 8, 4) + "}", eight), "begin > end"},
      {"end past the buffer", make_file("{\"t\":" + entry("F32", "[3]", 0, 12) + "}", eight),
       "past the end of the byte buffer"},
      {"huge begin", make_file("{\"t\":" + entry("U8", "[2]", 18446744073709551614ull, 0) + "}"), "begin > end"},
      {"end far past the buffer", make_file("{\"t\":" + entry("U8", "[2]", 18446744073709551613ull,
                                                             18446744073709551615ull) + "}"),
       "past the end of the byte buffer"},
      {"size mismatch", make_file("{\"t\":" + entry("F32", "[3]", 0, 8) + "}", eight), "size mismatch"},
      {"size mismatch (dtype)", make_file("{\"t\":" + entry("F16", "[2]", 0, 8) + "}", eight), "size mismatch"},
      {"overlap", make_file("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[1]", 4, 8) + "}", eight),
       "overlap"},
      {"same range twice",
       make_file("{\"a\":" + entry("F32", "[2]", 0, 8) + ",\"b\":" + entry("F32", "[2]", 0, 8) + "}", eight),
       "overlap"},
      {"hole", make_file("{\"a\":" + entry("F16", "[1]", 0, 2) + ",\"b\":" + entry("F16", "[1]", 6, 8) + "}", eight),
       "hole in the byte buffer"},
      {"first tensor not at 0", make_file("{\"a\":" + entry("F32", "[1]", 4, 8) + "}", eight),
       "hole in the byte buffer"},
      {"trailing bytes", make_file("{\"a\":" + entry("F32", "[1]", 0, 4) + "}", eight), "4 trailing bytes"},
      {"buffer but no tensor", make_file("{}", eight), "8 trailing bytes"},
      {"duplicate tensor name",
       make_file("{\"a\":" + entry("F32", "[1]", 0, 4) + ",\"a\":" + entry("F32", "[1]", 4, 8) + "}", eight),
       "duplicate key 'a'"},
      {"duplicate field", make_file(R"({"t":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}})", eight),
       "duplicate key 'dtype'"},
      {"metadata not an object", make_file(R"({"__metadata__":["a"]})"), "__metadata__ is a JSON array"},
      {"metadata value not a string", make_file(R"({"__metadata__":{"a":1}})"),
       "__metadata__ key 'a' is a JSON number"},
      {"name with odd bytes", make_file("{\"a\\n\\u00e9'\":" + entry("F32", "[1]", 0, 4) + "}"),
       "tensor 'a\\x0a\\xc3\\xa9\\x27'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_CONTAINS(parse_error(c.bytes), c.needle);
  }
}

TEST(SafetensorsParse, JsonErrorSaysWhere) {
  const std::string msg = parse_error(make_file("{\"a\": tru}"));
  EXPECT_CONTAINS(msg, "safetensors: header: not valid JSON (byte ");
  EXPECT_CONTAINS(msg, "line 1, column");
}

// Every prefix of a valid file is rejected with one clean line; every single-byte change either
// parses or is rejected the same way (the sanitizers watch for the rest).
TEST(SafetensorsParse, TruncatedAndMutatedFilesNeverCrash) {
  const std::vector<uint8_t> good = read_bytes(kFixtures + "st_fixture.safetensors");
  ASSERT_TRUE(SafetensorsFile::from_bytes(good).ok());
  for (size_t len = 0; len < good.size(); ++len) {
    SCOPED_TRACE(len);
    parse_error(std::vector<uint8_t>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len)));
  }
  const uint8_t replacements[] = {0x00, 0x20, '"', '{', '}', '[', ']', ',', ':', '-', '9', 0xff};
  size_t parsed = 0, rejected = 0;
  for (size_t pos = 0; pos < good.size(); ++pos) {
    for (uint8_t r : replacements) {
      if (good[pos] == r) continue;
      std::vector<uint8_t> bytes = good;
      bytes[pos] = r;
      Expected<SafetensorsFile> f = SafetensorsFile::from_bytes(bytes);
      if (!f.ok()) {
        const std::string msg = f.status().message();
        ASSERT_EQ(msg.rfind("safetensors: ", 0), 0u) << msg;
        ASSERT_EQ(msg.find('\n'), std::string::npos) << msg;
        ++rejected;
        continue;
      }
      ++parsed;
      uint64_t end = f->data_offset();
      for (const SafetensorsTensor& t : f->tensors()) {
        ASSERT_EQ(t.data, f->tensors().front().data + (t.offset - f->tensors().front().offset));
        end += t.n_bytes;
      }
      ASSERT_EQ(end, bytes.size());
    }
  }
  EXPECT_GT(rejected, 0u);
  EXPECT_GT(parsed, 0u);  // changes inside the tensor bytes or metadata text
}

}  // namespace
}  // namespace longctx::io
