// Header-only reader for tests/golden/smollm2_logits.bin, the reference logits of the real
// model models/SmolLM2-135M-Instruct.Q4_1.gguf written by tests/golden/make_smollm2_golden.py
// (an independent float64 NumPy forward pass). No dependency on the engine.
//
// File format (all little-endian, no padding, nothing after the last row):
//   magic          4 bytes   "LCSG"
//   version        u32       1
//   n_prompts      u32       (5)
//   seq_len        u32       (64)
//   vocab_size     u32       (49152)
//   n_subset       u32       (512)
//   model_sha256   32 bytes  sha256 of the .gguf the logits come from
//   subset_ids     i32[n_subset]   distinct vocab ids, strictly ascending, same for every row
//   then for each prompt (n_prompts times):
//     tokens       i32[seq_len]    input ids at positions 0..seq_len-1 (no BOS added)
//     then seq_len rows; row t holds the logits after tokens 0..t (predicting token t+1):
//       argmax_id     i32          argmax over the full vocab
//       argmax_logit  f64
//       second_id     i32          runner-up id
//       second_logit  f64          (argmax_logit - second_logit: the argmax margin)
//       logsumexp     f64          over all vocab_size logits
//       subset_logits f64[n_subset] logits at subset_ids, in that order
//
// Usage:
//   std::string err;
//   auto g = longctx::testing::load_smollm2_golden(path, &err);
//   ASSERT_TRUE(g) << err;
//   for (const auto& p : g->prompts)  // run the engine on p.tokens, then compare row by row
//
// Expected agreement for an fp32 engine on the same dequantized weights: logits within about
// 1e-3 of the row's logit range (SmolLM2GoldenRow::subset_range(), ~50-60 here); compare
// log-probabilities (logit - logsumexp) the same way. Require the engine's argmax to equal
// argmax_id only where argmax_margin() exceeds the tolerance (one stored row has a margin
// under 0.01).
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

namespace longctx::testing {

struct SmolLM2GoldenRow {
  int32_t argmax_id = 0;
  double argmax_logit = 0.0;
  int32_t second_id = 0;
  double second_logit = 0.0;
  double logsumexp = 0.0;
  std::vector<double> subset_logits;  // [n_subset], at SmolLM2Golden::subset_ids

  double argmax_margin() const { return argmax_logit - second_logit; }
  // argmax_logit minus the smallest stored subset logit: a scale for tolerances.
  double subset_range() const {
    double lo = argmax_logit;
    for (double v : subset_logits) lo = std::min(lo, v);
    return argmax_logit - lo;
  }
};

struct SmolLM2GoldenPrompt {
  std::vector<int32_t> tokens;        // [seq_len], positions 0..seq_len-1
  std::vector<SmolLM2GoldenRow> rows;  // [seq_len]; rows[t] predicts tokens[t + 1]
};

struct SmolLM2Golden {
  uint32_t version = 0;
  uint32_t seq_len = 0;
  uint32_t vocab_size = 0;
  std::array<uint8_t, 32> model_sha256{};
  std::vector<int32_t> subset_ids;  // [n_subset], strictly ascending
  std::vector<SmolLM2GoldenPrompt> prompts;

  std::string model_sha256_hex() const {
    static const char* kHex = "0123456789abcdef";
    std::string s;
    for (uint8_t b : model_sha256) {
      s += kHex[b >> 4];
      s += kHex[b & 15];
    }
    return s;
  }
};

namespace smollm2_golden_detail {

static_assert(std::endian::native == std::endian::little,
              "the golden file is little-endian; add byte swapping for this host");

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

 private:
  const std::vector<char>& buf_;
  size_t pos_ = 0;
};

inline bool fail(std::string* error, const std::string& msg) {
  if (error) *error = msg;
  return false;
}

}  // namespace smollm2_golden_detail

// Parses an in-memory golden file. Returns std::nullopt (and sets *error when non-null) on
// malformed input: bad magic/version, implausible counts, size mismatch (truncation or trailing
// bytes), ids out of range, subset not strictly ascending, non-finite values, or rows whose
// argmax/second/logsumexp are inconsistent with each other or with the subset logits.
inline std::optional<SmolLM2Golden> parse_smollm2_golden(const std::vector<char>& buf,
                                                         std::string* error) {
  using namespace smollm2_golden_detail;
  Cursor c(buf);
  char magic[4];
  if (!c.read(magic, 4) || std::memcmp(magic, "LCSG", 4) != 0) {
    fail(error, "bad magic (expected \"LCSG\")");
    return std::nullopt;
  }
  SmolLM2Golden g;
  uint32_t n_prompts = 0, n_subset = 0;
  if (!c.get(&g.version) || !c.get(&n_prompts) || !c.get(&g.seq_len) || !c.get(&g.vocab_size) ||
      !c.get(&n_subset) || !c.read(g.model_sha256.data(), g.model_sha256.size())) {
    fail(error, "truncated header");
    return std::nullopt;
  }
  if (g.version != 1) {
    fail(error, "unsupported version " + std::to_string(g.version));
    return std::nullopt;
  }
  if (n_prompts == 0 || n_prompts > 4096 || g.seq_len == 0 || g.seq_len > (1u << 20) ||
      g.vocab_size == 0 || g.vocab_size > (1u << 24) || n_subset == 0 || n_subset > g.vocab_size) {
    fail(error, "implausible counts in header");
    return std::nullopt;
  }
  // Every quantity is bounded above, so this cannot overflow 64 bits.
  const uint64_t row_bytes = 32 + 8 * uint64_t{n_subset};
  const uint64_t prompt_bytes = 4 * uint64_t{g.seq_len} + uint64_t{g.seq_len} * row_bytes;
  const uint64_t expect = 4 * uint64_t{n_subset} + uint64_t{n_prompts} * prompt_bytes;
  if (expect != c.remaining()) {
    fail(error, "size mismatch: " + std::to_string(c.remaining()) + " bytes after the header, " +
                    std::to_string(expect) + " expected");
    return std::nullopt;
  }
  const int64_t vocab = g.vocab_size;
  auto in_vocab = [vocab](int32_t id) { return id >= 0 && id < vocab; };

  g.subset_ids.resize(n_subset);
  c.read(g.subset_ids.data(), 4 * size_t{n_subset});
  for (uint32_t i = 0; i < n_subset; ++i) {
    if (!in_vocab(g.subset_ids[i]) || (i > 0 && g.subset_ids[i] <= g.subset_ids[i - 1])) {
      fail(error, "subset_ids out of range or not strictly ascending at index " +
                      std::to_string(i));
      return std::nullopt;
    }
  }

  g.prompts.resize(n_prompts);
  for (uint32_t p = 0; p < n_prompts; ++p) {
    SmolLM2GoldenPrompt& pr = g.prompts[p];
    pr.tokens.resize(g.seq_len);
    c.read(pr.tokens.data(), 4 * size_t{g.seq_len});
    for (uint32_t t = 0; t < g.seq_len; ++t) {
      if (!in_vocab(pr.tokens[t])) {
        fail(error, "prompt " + std::to_string(p) + ": token " + std::to_string(t) +
                        " out of range");
        return std::nullopt;
      }
    }
    pr.rows.resize(g.seq_len);
    for (uint32_t t = 0; t < g.seq_len; ++t) {
      SmolLM2GoldenRow& r = pr.rows[t];
      const std::string where = "prompt " + std::to_string(p) + " row " + std::to_string(t);
      c.get(&r.argmax_id);
      c.get(&r.argmax_logit);
      c.get(&r.second_id);
      c.get(&r.second_logit);
      c.get(&r.logsumexp);
      r.subset_logits.resize(n_subset);
      c.read(r.subset_logits.data(), 8 * size_t{n_subset});
      if (!in_vocab(r.argmax_id) || !in_vocab(r.second_id) || r.argmax_id == r.second_id) {
        fail(error, where + ": bad argmax/second ids");
        return std::nullopt;
      }
      if (!std::isfinite(r.argmax_logit) || !std::isfinite(r.second_logit) ||
          !std::isfinite(r.logsumexp) || r.second_logit > r.argmax_logit ||
          r.logsumexp < r.argmax_logit) {
        fail(error, where + ": inconsistent argmax_logit/second_logit/logsumexp");
        return std::nullopt;
      }
      for (uint32_t i = 0; i < n_subset; ++i) {
        const double v = r.subset_logits[i];
        if (!std::isfinite(v) || v > r.argmax_logit) {
          fail(error, where + ": subset logit " + std::to_string(i) +
                          " is not finite or exceeds argmax_logit");
          return std::nullopt;
        }
      }
    }
  }
  if (c.remaining() != 0) {  // unreachable given the size check; kept as a guard
    fail(error, "trailing bytes");
    return std::nullopt;
  }
  return g;
}

inline std::optional<SmolLM2Golden> load_smollm2_golden(const std::string& path,
                                                        std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    smollm2_golden_detail::fail(error, "cannot open " + path);
    return std::nullopt;
  }
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) {
    smollm2_golden_detail::fail(error, "read error on " + path);
    return std::nullopt;
  }
  auto g = parse_smollm2_golden(buf, error);
  if (!g && error) *error = path + ": " + *error;
  return g;
}

}  // namespace longctx::testing
