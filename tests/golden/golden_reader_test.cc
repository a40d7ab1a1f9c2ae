// Tests the golden-file reader (tests/golden/golden_file.h) on the model golden
// files written by tests/golden/make_model_golden.py: every file loads, its
// tensors are exactly the parameters (and gradients) the config implies, with
// the right shapes, and the stored loss is the cross-entropy of the stored
// logits. Also checks that malformed files are rejected.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "golden/golden_file.h"

namespace longctx::testing {
namespace {

#ifndef LONGCTX_SOURCE_DIR
#error "LONGCTX_SOURCE_DIR must be defined"
#endif

const std::vector<std::string> kModelFiles = {
    "learned_mha", "sinusoidal_gqa", "rope_gqa_tied", "rope_mqa",
    "alibi_mha",   "alibi6_gqa",     "none_mha",      "rope_wide_gqa",
};

std::string golden_path(const std::string& name) {
  return std::string(LONGCTX_SOURCE_DIR) + "/tests/golden/model_" + name + ".bin";
}

// Expected parameter shapes, derived from the config independently of the
// Python generator.
std::map<std::string, std::vector<int64_t>> expected_params(const nlohmann::json& c) {
  const int64_t V = c.at("vocab_size"), D = c.at("model_dim"), L = c.at("n_layers");
  const int64_t H = c.at("heads"), KVH = c.at("kv_heads"), hd = c.at("head_dim");
  const int64_t F = c.at("ff_dim"), ctx = c.at("ctx");
  const bool bias = c.at("bias");
  const bool norm_bias = bias && c.at("norm") == "layernorm";
  std::map<std::string, std::vector<int64_t>> p;
  p["token_embd.weight"] = {V, D};
  if (c.at("pos") == "learned") p["position_embd.weight"] = {ctx, D};
  auto norm = [&](const std::string& n) {
    p[n + ".weight"] = {D};
    if (norm_bias) p[n + ".bias"] = {D};
  };
  auto linear = [&](const std::string& n, int64_t out, int64_t in) {
    p[n + ".weight"] = {out, in};
    if (bias) p[n + ".bias"] = {out};
  };
  for (int64_t l = 0; l < L; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    norm(b + "attn_norm");
    linear(b + "attn_q", H * hd, D);
    linear(b + "attn_k", KVH * hd, D);
    linear(b + "attn_v", KVH * hd, D);
    linear(b + "attn_output", D, H * hd);
    norm(b + "ffn_norm");
    if (c.at("mlp") == "swiglu") linear(b + "ffn_gate", F, D);
    linear(b + "ffn_up", F, D);
    linear(b + "ffn_down", D, F);
  }
  norm("output_norm");
  if (!c.at("tied_embeddings").get<bool>()) p["output.weight"] = {V, D};
  return p;
}

class ModelGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ModelGolden, LoadsAndIsConsistentWithConfig) {
  std::string err;
  auto g = load_golden(golden_path(GetParam()), &err);
  ASSERT_TRUE(g.has_value()) << err;

  const auto c = nlohmann::json::parse(g->config_json);
  for (const char* key : {"vocab_size", "model_dim", "n_layers", "heads", "kv_heads", "head_dim",
                          "ff_dim", "ctx", "norm", "norm_eps", "mlp", "bias", "tied_embeddings",
                          "pos", "rope_theta"})
    EXPECT_TRUE(c.contains(key)) << key;
  const int64_t V = c.at("vocab_size");
  EXPECT_EQ(c.at("heads").get<int>() % c.at("kv_heads").get<int>(), 0);
  ASSERT_TRUE(g->strings.count("meta"));
  const auto meta = nlohmann::json::parse(g->strings.at("meta"));
  EXPECT_EQ(meta.at("batch").get<int>(), g->batch);
  EXPECT_EQ(meta.at("seq_len").get<int>(), g->seq_len);

  // tokens / targets
  EXPECT_EQ(g->batch, 2);
  EXPECT_EQ(g->seq_len, 11);
  EXPECT_LE(g->seq_len, c.at("ctx").get<int>());
  ASSERT_EQ(g->tokens.size(), size_t(g->batch) * g->seq_len);
  ASSERT_EQ(g->targets.size(), g->tokens.size());
  for (size_t i = 0; i < g->tokens.size(); ++i) {
    EXPECT_GE(g->tokens[i], 0);
    EXPECT_LT(g->tokens[i], V);
    EXPECT_GE(g->targets[i], 0);
    EXPECT_LT(g->targets[i], V);
  }
  // targets are the tokens shifted by one
  for (int b = 0; b < g->batch; ++b)
    for (int t = 0; t + 1 < g->seq_len; ++t)
      EXPECT_EQ(g->targets[b * g->seq_len + t], g->tokens[b * g->seq_len + t + 1]);

  // exactly params + grads + logits
  const auto params = expected_params(c);
  std::set<std::string> want{"logits"};
  for (const auto& [name, shape] : params) {
    want.insert(name);
    want.insert(name + ".grad");
  }
  std::set<std::string> have;
  for (const auto& [name, t] : g->tensors) have.insert(name);
  EXPECT_EQ(have, want);

  for (const auto& [name, shape] : params) {
    auto it = g->tensors.find(name);
    auto git = g->tensors.find(name + ".grad");
    ASSERT_NE(it, g->tensors.end()) << name;
    ASSERT_NE(git, g->tensors.end()) << name;
    EXPECT_EQ(it->second.shape, shape) << name;
    EXPECT_EQ(git->second.shape, shape) << name;
    ASSERT_EQ(int64_t(it->second.data.size()), it->second.numel()) << name;
    ASSERT_EQ(int64_t(git->second.data.size()), git->second.numel()) << name;
    double wmax = 0, gmax = 0;
    for (float v : it->second.data) {
      ASSERT_TRUE(std::isfinite(v)) << name;
      wmax = std::max(wmax, double(std::fabs(v)));
    }
    for (float v : git->second.data) {
      ASSERT_TRUE(std::isfinite(v)) << name;
      gmax = std::max(gmax, double(std::fabs(v)));
    }
    EXPECT_GT(wmax, 0.0) << name;
    // Every gradient is non-trivial, except attn_k.bias without RoPE (a key bias
    // shifts a whole score row, so softmax ignores it).
    const bool k_bias = name.size() > 11 && name.compare(name.size() - 11, 11, "attn_k.bias") == 0;
    if (k_bias && c.at("pos") != "rope")
      EXPECT_LT(gmax, 1e-12) << name;
    else
      EXPECT_GT(gmax, 1e-6) << name;
    // norm weights are initialised around 1
    if (name.find("norm.weight") != std::string::npos) {
      double mean = 0;
      for (float v : it->second.data) mean += v;
      mean /= double(it->second.data.size());
      EXPECT_NEAR(mean, 1.0, 0.1) << name;
    }
  }

  // logits and the loss they imply
  const auto& logits = g->tensors.at("logits");
  ASSERT_EQ(logits.shape, (std::vector<int64_t>{g->batch, g->seq_len, V}));
  double loss = 0;
  for (int i = 0; i < g->batch * g->seq_len; ++i) {
    const float* row = logits.data.data() + int64_t(i) * V;
    double mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(double(row[v]) - mx);
    loss += mx + std::log(s) - double(row[g->targets[i]]);
  }
  loss /= g->batch * g->seq_len;
  EXPECT_NEAR(loss, g->loss, 1e-5);
  EXPECT_NEAR(g->loss, std::log(double(V)), 0.5);  // small random weights
}

INSTANTIATE_TEST_SUITE_P(AllModels, ModelGolden, ::testing::ValuesIn(kModelFiles),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------
// malformed input

struct Writer {
  std::vector<char> buf;
  void raw(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    buf.insert(buf.end(), c, c + n);
  }
  template <class T>
  void put(T v) { raw(&v, sizeof(T)); }
  void record(const std::string& name, uint8_t dtype, const std::vector<int64_t>& dims,
              const void* payload, size_t bytes) {
    put<uint32_t>(uint32_t(name.size()));
    raw(name.data(), name.size());
    put<uint8_t>(dtype);
    put<uint32_t>(uint32_t(dims.size()));
    for (int64_t d : dims) put<int64_t>(d);
    raw(payload, bytes);
  }
};

std::vector<char> small_file(uint32_t count_delta = 0) {
  Writer w;
  w.raw("LCGT", 4);
  w.put<uint32_t>(1);
  w.put<uint32_t>(5 + count_delta);
  const std::string cfg = R"({"vocab_size": 3})";
  w.record("config", 3, {int64_t(cfg.size())}, cfg.data(), cfg.size());
  const int32_t tok[2] = {1, 2}, tgt[2] = {2, 0};
  w.record("tokens", 1, {1, 2}, tok, sizeof(tok));
  w.record("targets", 1, {1, 2}, tgt, sizeof(tgt));
  const double loss = 1.25;
  w.record("loss", 2, {}, &loss, sizeof(loss));
  const float x[6] = {1, 2, 3, 4, 5, 6};
  w.record("logits", 0, {1, 2, 3}, x, sizeof(x));
  return w.buf;
}

TEST(GoldenReader, ParsesSmallFile) {
  std::string err;
  auto g = parse_golden(small_file(), &err);
  ASSERT_TRUE(g.has_value()) << err;
  EXPECT_EQ(g->config_json, R"({"vocab_size": 3})");
  EXPECT_EQ(g->batch, 1);
  EXPECT_EQ(g->seq_len, 2);
  EXPECT_EQ(g->tokens, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(g->targets, (std::vector<int32_t>{2, 0}));
  EXPECT_EQ(g->loss, 1.25);
  ASSERT_EQ(g->tensors.size(), 1u);
  EXPECT_EQ(g->tensors.at("logits").shape, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(g->tensors.at("logits").data, (std::vector<float>{1, 2, 3, 4, 5, 6}));
}

TEST(GoldenReader, RejectsEveryTruncation) {
  const auto full = small_file();
  for (size_t n = 0; n < full.size(); ++n) {
    std::vector<char> cut(full.begin(), full.begin() + n);
    std::string err;
    EXPECT_FALSE(parse_golden(cut, &err).has_value()) << "prefix " << n;
    EXPECT_FALSE(err.empty()) << "prefix " << n;
  }
}

TEST(GoldenReader, RejectsBadHeaderAndTrailingBytes) {
  std::string err;
  auto bad_magic = small_file();
  bad_magic[0] = 'X';
  EXPECT_FALSE(parse_golden(bad_magic, &err).has_value());
  EXPECT_NE(err.find("magic"), std::string::npos) << err;

  auto bad_version = small_file();
  bad_version[4] = 2;
  EXPECT_FALSE(parse_golden(bad_version, &err).has_value());

  auto trailing = small_file();
  trailing.push_back(0);
  EXPECT_FALSE(parse_golden(trailing, &err).has_value());
  EXPECT_NE(err.find("trailing"), std::string::npos) << err;

  // count says 6 records but only 5 are there
  EXPECT_FALSE(parse_golden(small_file(1), &err).has_value());

  // unknown dtype in the first record (offset 12 + 4 + 6 = 22)
  auto bad_dtype = small_file();
  bad_dtype[22] = 9;
  EXPECT_FALSE(parse_golden(bad_dtype, &err).has_value());
  EXPECT_NE(err.find("dtype"), std::string::npos) << err;

  EXPECT_FALSE(load_golden("/nonexistent/model_x.bin", &err).has_value());
  EXPECT_NE(err.find("cannot open"), std::string::npos) << err;
  EXPECT_FALSE(load_golden("/nonexistent/model_x.bin", nullptr).has_value());
}

TEST(GoldenReader, RejectsDuplicateRecord) {
  Writer w;
  w.buf = small_file(1);
  const float x[1] = {0};
  w.record("logits", 0, {1}, x, sizeof(x));
  std::string err;
  EXPECT_FALSE(parse_golden(w.buf, &err).has_value());
  EXPECT_NE(err.find("duplicate"), std::string::npos) << err;
}

TEST(GoldenReader, RejectsTruncatedRealFile) {
  std::ifstream f(golden_path("rope_mqa"), std::ios::binary);
  ASSERT_TRUE(f);
  std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(parse_golden(buf, nullptr).has_value());
  for (size_t n : {size_t(0), size_t(11), buf.size() / 3, buf.size() / 2, buf.size() - 1}) {
    std::vector<char> cut(buf.begin(), buf.begin() + n);
    EXPECT_FALSE(parse_golden(cut, nullptr).has_value()) << n;
  }
}

}  // namespace
}  // namespace longctx::testing
