// Header-only reader for the whole-model golden files tests/golden/model_*.bin
// written by tests/golden/make_model_golden.py (PyTorch, float64 reference).
//
// File format (all little-endian):
//   magic    4 bytes  "LCGT"
//   version  u32      1
//   count    u32      number of records
//   then `count` records, each:
//     name_len u32, name (name_len bytes, ASCII, no terminator)
//     dtype    u8       0 = float32, 1 = int32, 2 = float64, 3 = UTF-8 bytes
//     ndim     u32
//     dims     i64[ndim]            (ndim 0 = scalar, 1 element)
//     payload  prod(dims) packed elements of dtype
//   and nothing after the last record.
// Records in a model file:
//   "config"  string   JSON model config (vocab_size, model_dim, n_layers, heads,
//                      kv_heads, head_dim, ff_dim, ctx, norm, norm_eps, mlp, bias,
//                      tied_embeddings, pos, rope_theta; optionally patterns, one
//                      attention pattern per layer, and rope_scaling)
//   "meta"    string   JSON: batch, seq_len, seed, init, generator
//   "tokens"  int32    [B, T];  "targets" int32 [B, T]
//   "loss"    float64  []       mean cross-entropy over the B*T positions
//   "logits"  float32  [B, T, V]
//   <param>   float32  every parameter by its longctx name ("blk.0.attn_q.weight")
//   <param>.grad float32 d loss / d param
// Mapping into GoldenFile: "config" -> config_json; other string records ->
// strings; "tokens"/"targets" -> tokens/targets (batch, seq_len from their
// shape); "loss" -> loss; every other numeric record -> tensors (as float).
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace longctx::testing {

struct GoldenTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

struct GoldenFile {
  std::string config_json;
  std::map<std::string, GoldenTensor> tensors;  // params, "<param>.grad", "logits"
  std::vector<int32_t> tokens, targets;         // [batch * seq_len], row-major
  int batch = 0, seq_len = 0;
  double loss = 0.0;
  std::map<std::string, std::string> strings;   // other string records ("meta")
};

namespace golden_detail {

static_assert(std::endian::native == std::endian::little,
              "golden files are little-endian; add byte swapping for this host");

class Cursor {
 public:
  explicit Cursor(const std::vector<char>& buf) : buf_(buf) {}
  bool read(void* dst, size_t n) {
    if (n > buf_.size() - pos_) return false;
    if (n) std::memcpy(dst, buf_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  template <class T>
  bool get(T* v) { return read(v, sizeof(T)); }
  size_t remaining() const { return buf_.size() - pos_; }
  size_t pos() const { return pos_; }

 private:
  const std::vector<char>& buf_;
  size_t pos_ = 0;
};

inline bool fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

}  // namespace golden_detail

// Parses an in-memory golden file. Returns std::nullopt (and sets *error when
// non-null) on any malformed input: bad magic/version, truncation, unknown
// dtype, negative or overflowing dims, duplicate names, trailing bytes,
// inconsistent tokens/targets, missing config/tokens/targets/loss.
inline std::optional<GoldenFile> parse_golden(const std::vector<char>& buf, std::string* error) {
  using namespace golden_detail;
  Cursor c(buf);
  char magic[4];
  uint32_t version = 0, count = 0;
  if (!c.read(magic, 4) || std::memcmp(magic, "LCGT", 4) != 0) {
    fail(error, "bad magic (expected \"LCGT\")");
    return std::nullopt;
  }
  if (!c.get(&version) || version != 1) {
    fail(error, "unsupported version " + std::to_string(version));
    return std::nullopt;
  }
  if (!c.get(&count)) {
    fail(error, "truncated header");
    return std::nullopt;
  }
  GoldenFile g;
  bool have_config = false, have_tokens = false, have_targets = false, have_loss = false;
  std::vector<int64_t> tokens_shape, targets_shape;
  std::map<std::string, bool> seen;
  for (uint32_t r = 0; r < count; ++r) {
    const std::string where = "record " + std::to_string(r);
    uint32_t name_len = 0;
    if (!c.get(&name_len) || name_len == 0 || name_len > 4096 || name_len > c.remaining()) {
      fail(error, where + ": bad or truncated name length");
      return std::nullopt;
    }
    std::string name(name_len, '\0');
    c.read(name.data(), name_len);
    if (seen[name]) {
      fail(error, where + ": duplicate record '" + name + "'");
      return std::nullopt;
    }
    seen[name] = true;
    uint8_t dtype = 0;
    uint32_t ndim = 0;
    if (!c.get(&dtype) || !c.get(&ndim) || ndim > 8) {
      fail(error, where + " '" + name + "': bad or truncated dtype/ndim");
      return std::nullopt;
    }
    std::vector<int64_t> dims(ndim);
    uint64_t n = 1;
    for (uint32_t i = 0; i < ndim; ++i) {
      if (!c.get(&dims[i]) || dims[i] < 0 || dims[i] > (int64_t{1} << 31)) {
        fail(error, where + " '" + name + "': bad or truncated dims");
        return std::nullopt;
      }
      n *= static_cast<uint64_t>(dims[i]);
      if (n > (uint64_t{1} << 31)) {
        fail(error, where + " '" + name + "': tensor too large");
        return std::nullopt;
      }
    }
    size_t elem = 0;
    switch (dtype) {
      case 0: elem = 4; break;
      case 1: elem = 4; break;
      case 2: elem = 8; break;
      case 3: elem = 1; break;
      default:
        fail(error, where + " '" + name + "': unknown dtype " + std::to_string(dtype));
        return std::nullopt;
    }
    if (n * elem > c.remaining()) {
      fail(error, where + " '" + name + "': truncated payload");
      return std::nullopt;
    }
    if (dtype == 3) {
      if (ndim != 1) {
        fail(error, where + " '" + name + "': string record must have ndim 1");
        return std::nullopt;
      }
      std::string s(n, '\0');
      c.read(s.data(), n);
      if (name == "config") {
        g.config_json = std::move(s);
        have_config = true;
      } else {
        g.strings[name] = std::move(s);
      }
      continue;
    }
    if (dtype == 1 && (name == "tokens" || name == "targets")) {
      std::vector<int32_t>& dst = name == "tokens" ? g.tokens : g.targets;
      dst.resize(n);
      c.read(dst.data(), n * 4);
      (name == "tokens" ? tokens_shape : targets_shape) = dims;
      (name == "tokens" ? have_tokens : have_targets) = true;
      continue;
    }
    if (name == "loss") {
      if (n != 1) {
        fail(error, "'loss' must have exactly one element");
        return std::nullopt;
      }
      if (dtype == 2) {
        c.read(&g.loss, 8);
      } else if (dtype == 0) {
        float f;
        c.read(&f, 4);
        g.loss = f;
      } else {
        fail(error, "'loss' must be float32 or float64");
        return std::nullopt;
      }
      have_loss = true;
      continue;
    }
    GoldenTensor t;
    t.shape = dims;
    t.data.resize(n);
    if (dtype == 0) {
      c.read(t.data.data(), n * 4);
    } else if (dtype == 1) {
      std::vector<int32_t> tmp(n);
      c.read(tmp.data(), n * 4);
      for (uint64_t i = 0; i < n; ++i) t.data[i] = static_cast<float>(tmp[i]);
    } else {
      std::vector<double> tmp(n);
      c.read(tmp.data(), n * 8);
      for (uint64_t i = 0; i < n; ++i) t.data[i] = static_cast<float>(tmp[i]);
    }
    g.tensors.emplace(std::move(name), std::move(t));
  }
  if (c.remaining() != 0) {
    fail(error, std::to_string(c.remaining()) + " trailing bytes after the last record");
    return std::nullopt;
  }
  if (!have_config || !have_tokens || !have_targets || !have_loss) {
    fail(error, "missing one of the records config, tokens, targets, loss");
    return std::nullopt;
  }
  if (tokens_shape.size() != 2 || tokens_shape != targets_shape) {
    fail(error, "tokens/targets must both be [batch, seq_len]");
    return std::nullopt;
  }
  g.batch = static_cast<int>(tokens_shape[0]);
  g.seq_len = static_cast<int>(tokens_shape[1]);
  return g;
}

inline std::optional<GoldenFile> load_golden(const std::string& path, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    golden_detail::fail(error, "cannot open " + path);
    return std::nullopt;
  }
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) {
    golden_detail::fail(error, "read error on " + path);
    return std::nullopt;
  }
  std::string err;
  auto g = parse_golden(buf, &err);
  if (!g) golden_detail::fail(error, path + ": " + err);
  return g;
}

}  // namespace longctx::testing
