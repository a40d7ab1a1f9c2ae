// CoLT5's routed feed-forward and routed attention inside a whole model: everything routed with no
// light branch is the dense model; the routing rule is causal (changing later tokens changes
// nothing earlier, in the full forward and through the cache); decoding through the cache equals
// the full forward and routes the same tokens at every layer; the routed attention's cache keeps
// only the routed key/values; checkpoints keep the blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "layers/router.h"
#include "model/checkpoint.h"
#include "model/config_overrides.h"
#include "model/model.h"
#include "model/pretrained.h"

namespace longctx {
namespace {

model::ModelConfig base_config() {
  model::ModelConfig c;
  c.vocab_size = 61;
  c.model_dim = 48;
  c.ctx = 48;
  c.set_uniform_layers(3, model::LayerConfig{4, 2, 12, 96});
  return c;
}

// A random model with weights larger than the init (attention far from uniform), thresholds kept.
std::unique_ptr<model::Model> random_model(const model::ModelConfig& c, uint64_t seed) {
  auto m = std::make_unique<model::Model>(c);
  Rng rng(seed);
  m->init(rng);
  for (const auto& t : m->layout().tensors()) {
    if (t.init == layers::Init::kValue) continue;
    for (int64_t i = 0; i < t.numel; ++i) m->params()[t.offset + i] *= 4.0f;
  }
  return m;
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b, size_t from, size_t to) {
  double d = 0;
  for (size_t i = from; i < to; ++i) d = std::max(d, std::fabs(double(a[i]) - b[i]));
  return d;
}

// Per (layer, router), the routed positions (Model::set_route_trace on).
std::map<std::pair<int, std::string>, std::set<int64_t>> routed_positions(model::Model& m) {
  std::map<std::pair<int, std::string>, std::set<int64_t>> out;
  for (auto& r : m.take_route_counts())
    out[{r.layer, r.count.router}].insert(r.count.positions.begin(), r.count.positions.end());
  return out;
}

int64_t routed_total(model::Model& m) {
  int64_t n = 0;
  for (const auto& r : m.take_route_counts()) n += r.count.routed;
  return n;
}

class Colt5Dense : public ::testing::TestWithParam<std::pair<const char*, int>> {};

TEST_P(Colt5Dense, EverythingRoutedWithoutLightBranchIsTheDenseModel) {
  model::ModelConfig dense = base_config(), routed = base_config();
  dense.pos = GetParam().second ? position::PosType::kAlibi : position::PosType::kRope;
  routed.pos = dense.pos;
  ASSERT_TRUE(model::apply_colt5(GetParam().first, &routed).ok());
  auto a = random_model(dense, 3);
  model::Model b(routed);
  ASSERT_EQ(a->layout().total(), b.layout().total());  // the same tensors, by the same names
  for (const auto& t : a->layout().tensors()) {
    const auto* u = b.layout().find(t.name);
    ASSERT_TRUE(u) << t.name;
    std::copy_n(a->params() + t.offset, t.numel, b.params() + u->offset);
  }
  ThreadPool pool(2);
  Arena arena;
  const int64_t B = 2, T = 20, V = dense.vocab_size;
  Rng rng(5);
  std::vector<int32_t> tokens(B * T), targets(B * T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  for (auto& t : targets) t = static_cast<int32_t>(rng.below(V));
  std::vector<float> la(B * T * V), lb(B * T * V);
  a->forward_logits(pool, arena, tokens.data(), B, T, la.data());
  b.forward_logits(pool, arena, tokens.data(), B, T, lb.data());
  EXPECT_LT(max_diff(la, lb, 0, la.size()), 1e-4);
  EXPECT_EQ(routed_total(b), int64_t(std::string(GetParam().first).find(';') != std::string::npos ? 3 : 1) * 3 * B * T);
  a->zero_grads();
  b.zero_grads();
  const double loss_a = a->forward_backward(pool, arena, tokens.data(), targets.data(), B, T, 1.0f / (B * T));
  const double loss_b = b.forward_backward(pool, arena, tokens.data(), targets.data(), B, T, 1.0f / (B * T));
  EXPECT_NEAR(loss_a, loss_b, 1e-6 * std::fabs(loss_a));
  for (const auto& t : a->layout().tensors()) {
    const auto* u = b.layout().find(t.name);
    double d = 0, scale = 1e-6;
    for (int64_t i = 0; i < t.numel; ++i) {
      d = std::max(d, std::fabs(double(a->grads()[t.offset + i]) - b.grads()[u->offset + i]));
      scale = std::max(scale, std::fabs(double(a->grads()[t.offset + i])));
    }
    EXPECT_LT(d, 1e-4 * scale) << t.name;
  }
}

// ffn alone (one router per layer); attn alone (two); both (three).
INSTANTIATE_TEST_SUITE_P(Specs, Colt5Dense,
                         ::testing::Values(std::make_pair("ffn=light:0,heavy:96,route:1", 0),
                                           std::make_pair("ffn=light:0,route:1;attn=light_heads:0,route_q:1,route_kv:1", 0),
                                           std::make_pair("ffn=light:0,route:1;attn=light_heads:0,route_q:1,route_kv:1", 1)));

class Colt5Routed : public ::testing::TestWithParam<const char*> {};

TEST_P(Colt5Routed, CausalAndDecodingEqualsFullForward) {
  model::ModelConfig c = base_config();
  ASSERT_TRUE(model::apply_colt5(GetParam(), &c).ok());
  auto m = random_model(c, 11);
  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 40, V = c.vocab_size, cut = 23;
  Rng rng(17);
  std::vector<int32_t> tokens(T);
  for (auto& t : tokens) t = static_cast<int32_t>(rng.below(V));
  std::vector<int32_t> changed = tokens;
  for (int64_t t = cut + 1; t < T; ++t) changed[t] = static_cast<int32_t>((tokens[t] + 1 + t) % V);
  std::vector<float> full(T * V), full2(T * V);
  m->set_route_trace(true);
  m->take_route_counts();
  m->forward_logits(pool, arena, tokens.data(), 1, T, full.data());
  const auto positions_full = routed_positions(*m);
  int64_t routed_full = 0;
  for (const auto& [key, p] : positions_full) routed_full += static_cast<int64_t>(p.size());
  // Some rows routed, not all: the rule is doing something.
  EXPECT_GT(routed_full, 0);
  EXPECT_LT(routed_full, static_cast<int64_t>(positions_full.size()) * T);
  m->forward_logits(pool, arena, changed.data(), 1, T, full2.data());
  routed_total(*m);
  // Training path: rows <= cut do not see the change (1e-5: the products' rows may be blocked
  // differently; a routing flip would move them by far more).
  EXPECT_LT(max_diff(full, full2, 0, (cut + 1) * V), 1e-5);
  EXPECT_GT(max_diff(full, full2, (cut + 1) * V, T * V), 1e-3);
  // Decoding path, token by token: equals the full forward, routes the same number of rows.
  // Small pages: the routed attention's compact slot fills several.
  auto cache = m->make_cache(T, {0, 0, 0, 1, 4, 0});
  ASSERT_TRUE(cache.ok());
  std::vector<float> step(V), decoded(T * V);
  for (int64_t t = 0; t < T; ++t) {
    ASSERT_TRUE(m->forward_cached(pool, arena, *cache, &tokens[t], 1, t, step.data(), false).ok());
    std::copy(step.begin(), step.end(), decoded.begin() + t * V);
  }
  EXPECT_EQ(routed_positions(*m), positions_full);  // the same tokens, layer by layer
  EXPECT_LT(max_diff(full, decoded, 0, T * V), 2e-4);
  // The routed attention's compact slots hold exactly the routed key/value positions.
  std::vector<int> routed_layers;  // the layers with routed attention, in slot order
  for (int l = 0; l < c.n_layers(); ++l)
    for (const auto& b : c.layers[l].blocks)
      if (b.kind == "routed_attention") routed_layers.push_back(l);
  for (int s = 0, i = 0; s < cache->n_slots(); ++s) {
    if (!cache->geometry().slots[s].compact) continue;
    const auto& want = positions_full.at({routed_layers.at(i++), "attn_kv"});
    EXPECT_EQ(std::set<int64_t>(cache->positions(s).begin(), cache->positions(s).end()), want);
    EXPECT_EQ(cache->pages_held(s), (static_cast<int64_t>(want.size()) + 3) / 4);
  }
  // The changed sequence through a fresh cache: its first cut + 1 steps are the same.
  auto cache2 = m->make_cache(T, {0, 0, 0, 1, 4, 0});
  ASSERT_TRUE(cache2.ok());
  for (int64_t t = 0; t <= cut; ++t) {
    ASSERT_TRUE(m->forward_cached(pool, arena, *cache2, &changed[t], 1, t, step.data(), false).ok());
    for (int64_t v = 0; v < V; ++v) ASSERT_EQ(step[v], decoded[t * V + v]) << "step " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Specs, Colt5Routed,
                         ::testing::Values("ffn=light:16,heavy:96,route:1/4", "ffn=light:0,heavy:128,route:1/8",
                                           "attn=window:6,light_heads:2,route_q:1/4,route_kv:1/2",
                                           "ffn=light:16,route:1/4;attn=window:8,light_heads:0,route_q:1/3,route_kv:1/3",
                                           "ffn=light:16,route:1/4,layers:0-1;attn=window:6,light_heads:2,route_q:1/4,"
                                           "route_kv:1/2,layers:1-2;attn=window:4,light_heads:0,layers:2"));

// The compact slot under the cache's other operations: a fork at a position inside a page, a
// rewind (a pass at a position already held), and a context shift (refused: the slot keeps
// rows by count).
TEST(Colt5, RoutedAttentionCacheForksRewindsAndRefusesShift) {
  model::ModelConfig c = base_config();
  ASSERT_TRUE(model::apply_colt5("attn=window:5,light_heads:2,route_q:1/3,route_kv:1/2", &c).ok());
  auto m = random_model(c, 21);
  ThreadPool pool(2);
  Arena arena;
  const int64_t T = 36, V = c.vocab_size, fork_at = 13;
  std::vector<int32_t> tokens(T);
  for (int64_t t = 0; t < T; ++t) tokens[t] = static_cast<int32_t>((t * 11 + 5) % V);
  const model::Model::CacheOptions small{0, 0, 0, 2, 4, 0};
  auto cold = m->make_cache(T, small);
  ASSERT_TRUE(cold.ok());
  std::vector<float> want(V), got(V);
  ASSERT_TRUE(m->forward_cached(pool, arena, *cold, tokens.data(), T, 0, want.data(), false).ok());
  // Fork: the parent ran a different continuation after fork_at; the child continues with
  // `tokens` and must see only the parent's rows before fork_at.
  auto parent = m->make_cache(T, small);
  ASSERT_TRUE(parent.ok());
  std::vector<int32_t> other = tokens;
  for (int64_t t = fork_at; t < T; ++t) other[t] = static_cast<int32_t>((other[t] + 7) % V);
  ASSERT_TRUE(m->forward_cached(pool, arena, *parent, other.data(), T, 0, got.data(), false).ok());
  kvcache::KvCache child = parent->fork(fork_at);
  ASSERT_TRUE(m->forward_cached(pool, arena, child, tokens.data() + fork_at, T - fork_at, fork_at, got.data(), false).ok());
  EXPECT_LT(max_diff(want, got, 0, V), 1e-4);
  // The parent's rows are untouched by the child's writes (copy on write): rewinding the parent to
  // fork_at and running `tokens` gives the same logits.
  ASSERT_TRUE(m->forward_cached(pool, arena, *parent, tokens.data() + fork_at, T - fork_at, fork_at, got.data(), false).ok());
  EXPECT_LT(max_diff(want, got, 0, V), 1e-4);
  for (int s = 0; s < child.n_slots(); ++s)
    if (child.geometry().slots[s].compact) EXPECT_EQ(child.positions(s), parent->positions(s));
  const Status shifted = m->shift_cache(*parent, 4, 8, T);
  EXPECT_FALSE(shifted.ok());
  EXPECT_NE(shifted.message().find("routed attention"), std::string::npos) << shifted.message();
}

TEST(Colt5, CheckpointKeepsTheRoutedBlocks) {
  tokenizer::TrainOptions topt;
  topt.vocab_size = 300;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the quick brown fox jumps over the lazy dog " + std::to_string(i) + "\n";
  auto tok = tokenizer::BpeTokenizer::train(text, topt);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  model::ModelConfig c = base_config();
  c.vocab_size = tok->vocab_size();
  ASSERT_TRUE(model::apply_colt5("ffn=light:24,heavy:64,route:1/16", &c).ok());
  auto m = random_model(c, 2);
  // Every token routed in layer 1 (its threshold far below the scores): the heavy branch's rows
  // are all of the pass's, the most arena it can take.
  m->params()[m->layout().find("blk.1.ffn_router.threshold")->offset] = -100.0f;
  const std::string path = ::testing::TempDir() + "/colt5_ckpt.gguf";
  ASSERT_TRUE(model::save_checkpoint(path, *m, *tok).ok());
  auto loaded = model::load_checkpoint(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(model::blocks_summary(loaded->model->config()), "attention+routed_feed_forward:light=24,heavy=64,route=1/16");
  for (int64_t i = 0; i < m->layout().total(); ++i) ASSERT_EQ(m->params()[i], loaded->model->params()[i]);
  // Inference reads the matrices in place from the file, in the arena forward_cached sizes from
  // the blocks' forward_floats (the heavy branch's product must not need scratch beyond it): a
  // prompt through the cache gives the fp32 model's logits.
  auto mapped = model::load_model(path);
  ASSERT_TRUE(mapped.ok()) << mapped.status().message();
  ASSERT_TRUE(mapped->model->has_mapped_weights());
  const int64_t T = c.ctx, V = c.vocab_size;
  std::vector<int32_t> tokens(T);
  for (int64_t t = 0; t < T; ++t) tokens[t] = static_cast<int32_t>((t * 7 + 3) % V);
  ThreadPool pool(2);
  std::vector<float> want(T * V), got(V);
  Arena big;
  m->forward_logits(pool, big, tokens.data(), 1, T, want.data());
  Arena exact;
  auto cache = mapped->model->make_cache(T);
  ASSERT_TRUE(cache.ok());
  mapped->model->take_route_counts();
  ASSERT_TRUE(mapped->model->forward_cached(pool, exact, *cache, tokens.data(), T, 0, got.data(), false).ok());
  for (const auto& r : mapped->model->take_route_counts())
    if (r.layer == 1) EXPECT_EQ(r.count.routed, T);
  EXPECT_LT(max_diff(std::vector<float>(want.end() - V, want.end()), got, 0, V), 1e-4);
  std::filesystem::remove(path);
}

TEST(Colt5, PartsCanNameTheirLayers) {
  model::ModelConfig c = base_config();
  const Status st = model::apply_colt5("ffn=light:8,layers:1;attn=light_heads:0,layers:0-1;attn=window:4,layers:1", &c);
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(layers::format_blocks(c.layers[0].blocks), "routed_attention:light_heads=0+feed_forward");
  EXPECT_EQ(layers::format_blocks(c.layers[1].blocks), "routed_attention:window=4+routed_feed_forward:light=8");
  EXPECT_EQ(c.layers[2].blocks, layers::default_blocks());
}

TEST(Colt5, BadSpecsAreRefused) {
  for (const char* spec : {"", ";", "attn2=x", "attn=light_heads:4", "attn=light_heads:1", "attn=window:0",
                           "attn=route_q:0", "attn=route_kv:3/2", "attn=heads:2", "attn=rule:topk",
                           "attn=rule:x", "attn=layers:3", "attn=layers:x", "attn=layers:2-1", "attn=layers:-1",
                           "ffn=layers:0-", "ffn=light:-1", "ffn=route:0", "ffn=route:2", "ffn=route:1/0",
                           "ffn=heavy:0", "ffn=bogus:3", "ffn=light:4,light:5", "ffn=route:abc"}) {
    model::ModelConfig c = base_config();
    const Status st = model::apply_colt5(spec, &c);
    EXPECT_FALSE(st.ok()) << spec;
    EXPECT_EQ(c.layers[0].blocks, layers::default_blocks()) << spec;
  }
}

}  // namespace
}  // namespace longctx
