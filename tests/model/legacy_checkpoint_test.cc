// Checkpoints written before layers became block lists (tests/model/legacy/README.md) still load,
// as attention then feed-forward in every layer, and give the logits the old code computed for
// them, in a full forward and decoded through the cache; saved again they carry a block list and
// give the same logits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "model/checkpoint.h"

namespace longctx {
namespace {

const std::vector<int32_t> kTokens = {275, 259, 296, 293, 103, 295, 271, 287, 288, 259, 273, 290, 266, 259,
                                      267, 46,  294, 259, 267, 291, 292, 285, 116, 272, 284, 109, 10,  32,
                                      33,  120, 200, 250, 260, 270, 280, 290, 297, 1,   2,   3};

std::string legacy(const std::string& name) { return std::string(LONGCTX_SOURCE_DIR) + "/tests/model/legacy/" + name; }

// A float32 C-order .npy file (version 1.0): the values, and rows x cols from its header.
std::vector<float> read_npy(const std::string& path, int64_t* rows, int64_t* cols) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return {};
  const size_t header_len = static_cast<uint8_t>(bytes[8]) | (static_cast<uint8_t>(bytes[9]) << 8);
  const std::string header = bytes.substr(10, header_len);
  if (header.find("'<f4'") == std::string::npos || header.find("False") == std::string::npos) return {};
  long long r = 0, c = 0;
  if (std::sscanf(header.c_str() + header.find("'shape': (") + 10, "%lld, %lld", &r, &c) != 2) return {};
  *rows = r;
  *cols = c;
  std::vector<float> out(static_cast<size_t>(r * c));
  if (bytes.size() != 10 + header_len + out.size() * sizeof(float)) return {};
  std::memcpy(out.data(), bytes.data() + 10 + header_len, out.size() * sizeof(float));
  return out;
}

// Largest |a - b| over the largest logit range of a row of b.
double rel_diff(const std::vector<float>& a, const std::vector<float>& b, int64_t cols) {
  double worst = 0, range = 0;
  for (size_t r = 0; r * cols < b.size(); ++r) {
    float lo = b[r * cols], hi = lo;
    for (int64_t j = 0; j < cols; ++j) lo = std::min(lo, b[r * cols + j]), hi = std::max(hi, b[r * cols + j]);
    range = std::max(range, double(hi - lo));
  }
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst / range;
}

std::vector<float> full_logits(model::Model& m) {
  ThreadPool pool(2);
  Arena arena;
  const int64_t n = static_cast<int64_t>(kTokens.size());
  std::vector<float> out(n * m.config().vocab_size);
  m.forward_logits(pool, arena, kTokens.data(), 1, n, out.data());
  return out;
}

std::vector<float> decoded_logits(model::Model& m) {
  ThreadPool pool(2);
  Arena arena;
  const int64_t n = static_cast<int64_t>(kTokens.size()), V = m.config().vocab_size;
  std::vector<float> out(n * V);
  auto cache = m.make_cache(n);
  EXPECT_TRUE(cache.ok());
  for (int64_t t = 0; t < n; ++t)
    EXPECT_TRUE(m.forward_cached(pool, arena, *cache, &kTokens[t], 1, t, out.data() + t * V, false).ok());
  return out;
}

class LegacyCheckpoint : public ::testing::TestWithParam<const char*> {};

TEST_P(LegacyCheckpoint, LoadsAndGivesTheOldLogits) {
  const std::string name = GetParam();
  auto loaded = model::load_checkpoint(legacy(name + ".gguf"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  model::Model& m = *loaded->model;
  for (const auto& l : m.config().layers) EXPECT_EQ(layers::format_blocks(l.blocks), "attention+feed_forward");
  EXPECT_EQ(loaded->tokenizer.encode("In the beginning God created the heaven and the earth. And the earth was "
                                     "without form"),
            std::vector<int32_t>(kTokens.begin(), kTokens.begin() + 26));
  int64_t rows = 0, cols = 0;
  const std::vector<float> want = read_npy(legacy(name + ".logits.npy"), &rows, &cols);
  ASSERT_EQ(rows, static_cast<int64_t>(kTokens.size()));
  ASSERT_EQ(cols, m.config().vocab_size);
  const std::vector<float> got = full_logits(m);
  // The same operations in the same order: equal but for a thread split that may differ.
  EXPECT_LE(rel_diff(got, want, cols), 1e-6);
  const std::vector<float> want_dec = read_npy(legacy(name + ".decode.npy"), &rows, &cols);
  ASSERT_EQ(want_dec.size(), want.size());
  EXPECT_LE(rel_diff(decoded_logits(m), want_dec, cols), 1e-6);

  // Saved by today's code: the block list is in the file, and nothing else changed.
  const std::string again = testing::TempDir() + "/legacy_" + name + ".gguf";
  ASSERT_TRUE(model::save_checkpoint(again, m, loaded->tokenizer).ok());
  auto f = io::GgufFile::open(again);
  ASSERT_TRUE(f.ok());
  auto lists = f->get_string_array("longctx.blocks");
  ASSERT_TRUE(lists.ok());
  EXPECT_EQ(*lists, std::vector<std::string>(2, "attention+feed_forward"));
  auto reloaded = model::load_checkpoint(again);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().message();
  EXPECT_EQ(full_logits(*reloaded->model), got);
  std::filesystem::remove(again);
}

INSTANTIATE_TEST_SUITE_P(Files, LegacyCheckpoint, ::testing::Values("legacy_rope_window_gqa", "legacy_alibi_bigbird_bias"));

}  // namespace
}  // namespace longctx
