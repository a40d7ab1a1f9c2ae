// Reader for tests/quant/golden/*.bin, written by tests/quant/make_quant_golden.py (gguf-py).
// Format (little-endian): "LCQG", u32 version 1, u32 record count, then per record
//   u32 name length, name, u8 kind (0 f32, 1 u8, 2 i64), u64 element count, elements.
#pragma once
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

namespace longctx::testing {

struct QuantGolden {
  std::map<std::string, std::vector<float>> f32;
  std::map<std::string, std::vector<uint8_t>> u8;
  std::map<std::string, std::vector<int64_t>> i64;
  std::string error;  // empty when the file parsed
};

inline QuantGolden read_quant_golden(const std::string& path) {
  QuantGolden g;
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    g.error = "cannot open " + path;
    return g;
  }
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  size_t pos = 0;
  auto take = [&](void* out, size_t n) {
    if (pos + n > b.size()) return false;
    if (n) std::memcpy(out, b.data() + pos, n);
    pos += n;
    return true;
  };
  char magic[4];
  uint32_t version = 0, count = 0;
  if (!take(magic, 4) || std::memcmp(magic, "LCQG", 4) != 0 || !take(&version, 4) || version != 1 || !take(&count, 4)) {
    g.error = path + ": not an LCQG v1 file";
    return g;
  }
  for (uint32_t r = 0; r < count; ++r) {
    uint32_t len = 0;
    uint8_t kind = 0;
    uint64_t n = 0;
    std::string name;
    if (!take(&len, 4) || len > 1024) break;
    name.resize(len);
    if (!take(name.data(), len) || !take(&kind, 1) || !take(&n, 8)) break;
    bool ok = false;
    if (kind == 0) {
      auto& v = g.f32[name];
      v.resize(n);
      ok = n <= b.size() && take(v.data(), n * 4);
    } else if (kind == 1) {
      auto& v = g.u8[name];
      v.resize(n);
      ok = n <= b.size() && take(v.data(), n);
    } else if (kind == 2) {
      auto& v = g.i64[name];
      v.resize(n);
      ok = n <= b.size() && take(v.data(), n * 8);
    }
    if (!ok) {
      g.error = path + ": bad record '" + name + "'";
      return g;
    }
  }
  if (pos != b.size()) g.error = path + ": truncated or trailing bytes";
  return g;
}

}  // namespace longctx::testing
