// ModelConfig validation of the RoPE scaling, and the config's trip through checkpoint metadata:
// per-layer attention patterns and RoPE scaling come back equal, damaged values are refused with
// a message naming the key, and checkpoints without the newer keys still load (causal, no scaling).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "attention/pattern.h"
#include "io/gguf.h"
#include "model/checkpoint.h"
#include "model/config_overrides.h"
#include "model/model.h"
#include "position/rope.h"

namespace longctx {
namespace {

using position::RopeScalingType;

// Three layers, each with its own pattern, and YaRN from an original context of 32 to 128.
model::ModelConfig scaled_config() {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = 32;
  c.ctx = 128;
  c.pos = model::PosType::kRope;
  c.rope_theta = 5000.0f;
  c.set_uniform_layers(3, model::LayerConfig{4, 2, 8, 48});
  auto pats = attention::parse_pattern_list("window:16,bigbird:4,2,1,3,7,causal");
  EXPECT_TRUE(pats.ok()) << pats.status().message();
  for (int l = 0; l < 3; ++l) c.layers[l].pattern = (*pats)[l];
  c.rope_scaling.type = RopeScalingType::kYarn;
  c.rope_scaling.factor = 4.0f;
  c.rope_scaling.original_ctx = 32;
  c.rope_scaling.beta_fast = 24.0f;  // not the defaults, so the trip covers every field
  c.rope_scaling.beta_slow = 1.5f;
  c.rope_scaling.attn_factor = 1.25f;
  return c;
}

void expect_same_config(const model::ModelConfig& a, const model::ModelConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.model_dim, b.model_dim);
  EXPECT_EQ(a.ctx, b.ctx);
  EXPECT_EQ(a.norm, b.norm);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.mlp, b.mlp);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
  EXPECT_EQ(a.pos, b.pos);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_EQ(a.rope_scaling.type, b.rope_scaling.type);
  EXPECT_EQ(a.rope_scaling.factor, b.rope_scaling.factor);
  EXPECT_EQ(a.rope_scaling.original_ctx, b.rope_scaling.original_ctx);
  EXPECT_EQ(a.rope_scaling.beta_fast, b.rope_scaling.beta_fast);
  EXPECT_EQ(a.rope_scaling.beta_slow, b.rope_scaling.beta_slow);
  EXPECT_EQ(a.rope_scaling.attn_factor, b.rope_scaling.attn_factor);
  ASSERT_EQ(a.n_layers(), b.n_layers());
  for (int l = 0; l < a.n_layers(); ++l) {
    EXPECT_EQ(a.layers[l].heads, b.layers[l].heads) << "layer " << l;
    EXPECT_EQ(a.layers[l].kv_heads, b.layers[l].kv_heads) << "layer " << l;
    EXPECT_EQ(a.layers[l].head_dim, b.layers[l].head_dim) << "layer " << l;
    EXPECT_EQ(a.layers[l].ff_dim, b.layers[l].ff_dim) << "layer " << l;
    // format_pattern spells every field (BigBird's seed included), so equal text = equal pattern.
    EXPECT_EQ(attention::format_pattern(a.layers[l].pattern), attention::format_pattern(b.layers[l].pattern))
        << "layer " << l;
  }
}

// The config keys of `c`, with `edit` applied to the writer, read back through read_config.
template <class Edit>
Expected<model::ModelConfig> reread(const model::ModelConfig& c, Edit edit,
                                    const std::set<std::string>& drop = {}) {
  io::GgufWriter full;
  model::write_config_keys(full, c);
  auto bytes = full.to_bytes();
  if (!bytes.ok()) return bytes.status();
  auto parsed = io::GgufFile::from_bytes(std::move(*bytes));
  if (!parsed.ok()) return parsed.status();
  io::GgufWriter w;  // the same keys, minus `drop`
  for (const auto& kv : parsed->metadata())
    if (!drop.count(kv.key)) w.set(kv.key, kv.value);
  edit(w);
  auto out = w.to_bytes();
  if (!out.ok()) return out.status();
  auto f = io::GgufFile::from_bytes(std::move(*out));
  if (!f.ok()) return f.status();
  return model::read_config(*f);
}

void expect_error(const Expected<model::ModelConfig>& r, const std::string& part) {
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << part;
  EXPECT_NE(r.status().message().find(part), std::string::npos) << r.status().message();
}

TEST(ModelConfig, ValidatesRopeScaling) {
  model::ModelConfig c = scaled_config();
  ASSERT_TRUE(c.validate().ok()) << c.validate().message();

  auto bad = [&](auto change, const std::string& part) {
    model::ModelConfig d = scaled_config();
    change(d);
    Status s = d.validate();
    ASSERT_FALSE(s.ok()) << "expected: " << part;
    EXPECT_NE(s.message().find(part), std::string::npos) << s.message();
  };
  bad([](auto& d) { d.rope_scaling.factor = 0.5f; }, "factor must be finite and >= 1");
  bad([](auto& d) { d.rope_scaling.factor = NAN; }, "factor must be finite and >= 1");
  bad([](auto& d) { d.rope_scaling.factor = INFINITY; }, "factor must be finite and >= 1");
  bad([](auto& d) { d.rope_scaling.original_ctx = 0; }, "original context in [1, ctx = 128], got 0");
  bad([](auto& d) { d.rope_scaling.original_ctx = 129; }, "original context in [1, ctx = 128], got 129");
  bad([](auto& d) { d.rope_scaling.beta_slow = 30.0f; d.rope_scaling.beta_fast = 30.0f; }, "beta_fast > beta_slow");
  bad([](auto& d) { d.rope_scaling.attn_factor = -1.0f; }, "attn_factor");
  bad([](auto& d) { d.pos = model::PosType::kAlibi; }, "needs pos = rope, got alibi");
  bad([](auto& d) { d.rope_scaling = {RopeScalingType::kLinear, 0.25f}; }, "rope scaling 'linear:0.25'");

  // Linear and NTK need no original context; none ignores every other field.
  c.rope_scaling = {RopeScalingType::kLinear, 2.0f};
  EXPECT_TRUE(c.validate().ok()) << c.validate().message();
  c.rope_scaling = {RopeScalingType::kNtk, 8.0f};
  EXPECT_TRUE(c.validate().ok()) << c.validate().message();
  c.rope_scaling = {RopeScalingType::kNone, 0.0f};
  c.pos = model::PosType::kAlibi;
  EXPECT_TRUE(c.validate().ok()) << c.validate().message();
}

TEST(ModelConfig, ScaledRopeChangesTheModel) {
  // The model builds its Rope from the config's scaling: same weights, other logits (the golden
  // files model_yarn_window / model_linear_rope_mixed check the values themselves).
  model::ModelConfig c = scaled_config();
  model::Model scaled(c);
  Rng rng(11);
  scaled.init(rng);
  c.rope_scaling = {};
  model::Model plain(c);
  std::memcpy(plain.params(), scaled.params(), scaled.layout().total() * sizeof(float));
  ThreadPool pool(1);
  Arena arena;
  const int64_t T = 12, V = c.vocab_size;
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  std::vector<float> a(T * V), b(T * V);
  scaled.forward_logits(pool, arena, tokens.data(), 1, T, a.data());
  plain.forward_logits(pool, arena, tokens.data(), 1, T, b.data());
  double diff = 0;
  for (int64_t i = 0; i < T * V; ++i) diff = std::max(diff, double(std::fabs(a[i] - b[i])));
  EXPECT_GT(diff, 1e-4);
}

TEST(ModelConfig, CheckpointRoundTripKeepsPatternsAndRopeScaling) {
  const model::ModelConfig cfg0 = scaled_config();
  tokenizer::TrainOptions topt;
  topt.vocab_size = 280;
  std::string text;
  for (int i = 0; i < 80; ++i) text += "a window onto bigbird " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig cfg = cfg0;
  cfg.vocab_size = tok->vocab_size();
  model::Model m(cfg);
  Rng rng(5);
  m.init(rng);
  const std::string path = ::testing::TempDir() + "/ckpt_config_roundtrip.gguf";
  ASSERT_TRUE(model::save_checkpoint(path, m, *tok).ok());
  auto loaded = model::load_checkpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  expect_same_config(loaded->model->config(), cfg);
  EXPECT_EQ(0, std::memcmp(loaded->model->params(), m.params(), m.layout().total() * sizeof(float)));

  // A damaged scaling type in a whole checkpoint: one message with the file and the key.
  {
    io::GgufWriter w;
    model::write_config_keys(w, cfg);
    model::write_tokenizer_keys(w, *tok);
    w.set_string("longctx.rope.scaling.type", "foo");
    for (const auto& t : m.layout().tensors()) {
      std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
      ASSERT_TRUE(w.add_tensor(t.name, dims, 0, m.params() + t.offset, t.numel * sizeof(float)).ok());
    }
    ASSERT_TRUE(w.write(path).ok());
    auto bad = model::load_checkpoint(path);
    ASSERT_FALSE(bad.ok());
    const std::string msg = bad.status().message();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("key 'longctx.rope.scaling.type' is 'foo' (expected none, linear, ntk or yarn)"),
              std::string::npos)
        << msg;
  }
  std::filesystem::remove(path);
}

TEST(ModelConfig, ReadConfigRefusesDamagedScaling) {
  const model::ModelConfig c = scaled_config();
  auto same = reread(c, [](io::GgufWriter&) {});
  ASSERT_TRUE(same.ok()) << same.status().message();
  expect_same_config(*same, c);

  expect_error(reread(c, [](io::GgufWriter& w) { w.set_string("longctx.rope.scaling.type", "foo"); }),
               "key 'longctx.rope.scaling.type' is 'foo'");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_u32("longctx.rope.scaling.type", 3); }),
               "longctx.rope.scaling.type");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_f32("longctx.rope.scaling.factor", 0.5f); }),
               "factor must be finite and >= 1");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_f32("longctx.rope.scaling.factor", NAN); }),
               "factor must be finite and >= 1");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_string("longctx.rope.scaling.factor", "4"); }),
               "longctx.rope.scaling.factor");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_u32("longctx.rope.scaling.original_context_length", 0); }),
               "original context in [1, ctx = 128], got 0");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_u32("longctx.rope.scaling.original_context_length", 4096); }),
               "got 4096");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_f32("longctx.rope.scaling.yarn_beta_fast", 1.0f); }),
               "beta_fast > beta_slow");
  expect_error(reread(c, [](io::GgufWriter& w) { w.set_f32("longctx.rope.scaling.attn_factor", -2.0f); }),
               "attn_factor");
  expect_error(reread(c, [](io::GgufWriter& w) {
                 w.set_string_array("longctx.attention.pattern", {"window:16", "full", "causal"});
               }),
               "bidirectional");
}

TEST(ModelConfig, OlderCheckpointsWithoutTheNewKeysLoad) {
  // No longctx.rope.scaling.* and no longctx.attention.pattern: no scaling, causal everywhere.
  model::ModelConfig c = scaled_config();
  const std::set<std::string> newer = {
      "longctx.attention.pattern",          "longctx.rope.scaling.type",
      "longctx.rope.scaling.factor",        "longctx.rope.scaling.original_context_length",
      "longctx.rope.scaling.yarn_beta_fast", "longctx.rope.scaling.yarn_beta_slow",
      "longctx.rope.scaling.attn_factor"};
  auto old = reread(c, [](io::GgufWriter&) {}, newer);
  ASSERT_TRUE(old.ok()) << old.status().message();
  EXPECT_EQ(old->rope_scaling.type, RopeScalingType::kNone);
  for (const auto& l : old->layers) EXPECT_EQ(attention::format_pattern(l.pattern), "causal");

  // Only the type present (a linear scaling written by hand): the rest keep their defaults.
  auto typed = reread(c, [](io::GgufWriter& w) {
    w.set_string("longctx.rope.scaling.type", "linear");
    w.set_f32("longctx.rope.scaling.factor", 2.0f);
  }, newer);
  ASSERT_TRUE(typed.ok()) << typed.status().message();
  EXPECT_EQ(typed->rope_scaling.type, RopeScalingType::kLinear);
  EXPECT_EQ(typed->rope_scaling.factor, 2.0f);
  EXPECT_EQ(typed->rope_scaling.original_ctx, 0);
}

}  // namespace
}  // namespace longctx

namespace longctx::model {
namespace {

TEST(ConfigOverrides, BuildAFreshConfigAndNameTheSettingOnError) {
  ConfigOverrides o;
  o.preset = "small";
  o.layers = 3;
  o.kv_heads = 2;
  o.attn = "window:16,causal";
  o.rope_scaling = "yarn:2";
  o.pos = "rope";
  auto c = config_from_overrides(o, 500, 64);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->n_layers(), 3);
  EXPECT_EQ(c->model_dim, 384);
  EXPECT_EQ(c->vocab_size, 500);
  EXPECT_EQ(c->ctx, 64);
  EXPECT_EQ(c->layers[2].kv_heads, 2);
  EXPECT_EQ(attention::format_pattern(c->layers[2].pattern), "window:16");  // the list repeats
  EXPECT_EQ(attention::format_pattern(c->layers[1].pattern), "causal");
  EXPECT_EQ(pattern_summary(*c), "window:16,causal");
  EXPECT_EQ(c->rope_scaling.original_ctx, 64);  // yarn without ORIG: the context being extended
  o.mlp = "relu";
  EXPECT_NE(config_from_overrides(o, 500, 64).status().message().find("setting 'mlp': unknown mlp 'relu'"),
            std::string::npos);
  ConfigOverrides bad_preset;
  bad_preset.preset = "huge";
  EXPECT_NE(config_from_overrides(bad_preset, 500, 64).status().message().find("setting 'preset'"), std::string::npos);
}

TEST(ConfigOverrides, AgreeingSettingsAreNoConflictOthersAreNamed) {
  ConfigOverrides made;
  made.preset = "tiny";
  made.layers = 2;
  made.attn = "window:8";
  auto c = config_from_overrides(made, 300, 32);
  ASSERT_TRUE(c.ok());
  auto none = conflicts(made, *c);  // the same settings again
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  ConfigOverrides pos;
  pos.pos = "rope";
  EXPECT_TRUE(conflicts(pos, *c)->empty());
  ConfigOverrides other;
  other.preset = "small";
  other.kv_heads = 2;
  other.layers = 2;
  auto cs = conflicts(other, *c);
  ASSERT_TRUE(cs.ok());
  ASSERT_EQ(cs->size(), 2u);
  EXPECT_EQ((*cs)[0].setting, "preset");
  EXPECT_EQ((*cs)[1].setting, "kv_heads");
  EXPECT_EQ((*cs)[1].asked, "2");
  EXPECT_EQ((*cs)[1].has, "kv_heads 4");
  ConfigOverrides unparsable;
  unparsable.attn = "spiral";
  EXPECT_FALSE(conflicts(unparsable, *c).ok());
}

}  // namespace
}  // namespace longctx::model
