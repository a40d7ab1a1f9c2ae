// Training a subset (model/trainable.h, Model::set_trainable): the selectors pick what they
// say and refuse what does not exist; frozen tensors stay byte-identical through training and
// get no optimizer state; the gradients of the tensors that train are exactly those of a run
// where everything trains (gradients flow through frozen tensors; the skipped work, frozen
// weight gradients and the blocks below the lowest trained one, changes nothing else); a
// resumed run of a subset reproduces the uninterrupted one, and a state saved for another
// subset is refused.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "model/checkpoint.h"
#include "model/trainable.h"
#include "train/trainer.h"

namespace longctx {
namespace {

model::ModelConfig config(int vocab, bool added) {
  model::ModelConfig c;
  c.vocab_size = vocab;
  c.model_dim = 32;
  c.ctx = 32;
  c.set_uniform_layers(4, model::LayerConfig{4, 2, 8, 64});
  if (added) c.added_layers = {1, 3};
  return c;
}

std::vector<std::string> selected(const model::ModelConfig& c, const std::string& only, const std::string& freeze) {
  model::ParamLayout layout(c);
  auto on = model::resolve_trainable(c, layout, only, freeze);
  EXPECT_TRUE(on.ok()) << only << " / " << freeze << ": " << on.status().message();
  std::vector<std::string> out;
  if (!on.ok()) return out;
  for (size_t i = 0; i < on->size(); ++i)
    if ((*on)[i]) out.push_back(layout.tensors()[i].name);
  return out;
}

std::string error_of(const model::ModelConfig& c, const std::string& only, const std::string& freeze) {
  model::ParamLayout layout(c);
  auto on = model::resolve_trainable(c, layout, only, freeze);
  return on.ok() ? "" : on.status().message();
}

std::vector<std::string> layer_tensors(int l) {
  std::vector<std::string> out;
  for (const char* n : {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                        "ffn_norm.weight", "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"})
    out.push_back("blk." + std::to_string(l) + "." + n);
  return out;
}

TEST(Trainable, SelectorsPickWhatTheySay) {
  const model::ModelConfig c = config(100, true);
  auto cat = [](std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
  };
  EXPECT_EQ(selected(c, "new", ""), cat(layer_tensors(1), layer_tensors(3)));
  EXPECT_EQ(selected(c, "blocks=0,2", ""), cat(layer_tensors(0), layer_tensors(2)));
  EXPECT_EQ(selected(c, "blocks=1-2,embeddings", ""),
            cat(cat({"token_embd.weight"}, layer_tensors(1)), layer_tensors(2)));
  EXPECT_EQ(selected(c, "head", ""), (std::vector<std::string>{"output_norm.weight"}));  // tied output
  EXPECT_EQ(selected(c, "blk.*.attn_q.weight", ""),
            (std::vector<std::string>{"blk.0.attn_q.weight", "blk.1.attn_q.weight", "blk.2.attn_q.weight",
                                      "blk.3.attn_q.weight"}));
  EXPECT_EQ(selected(c, "blocks=3", "norms"),
            (std::vector<std::string>{"blk.3.attn_q.weight", "blk.3.attn_k.weight", "blk.3.attn_v.weight",
                                      "blk.3.attn_output.weight", "blk.3.ffn_gate.weight", "blk.3.ffn_up.weight",
                                      "blk.3.ffn_down.weight"}));
  // --freeze alone: everything else.
  const auto all = selected(c, "", "");
  const auto most = selected(c, "", "embeddings,blocks=0-2");
  EXPECT_EQ(most, cat(layer_tensors(3), {"output_norm.weight"}));
  EXPECT_EQ(all.size(), 1 + 4 * 9 + 1u);

  EXPECT_NE(error_of(c, "blocks=4", "").find("layer 4 does not exist"), std::string::npos);
  EXPECT_NE(error_of(c, "blocks=1,9", "").find("layer 9 does not exist"), std::string::npos);
  EXPECT_NE(error_of(config(100, false), "new", "").find("no added layers"), std::string::npos);
  EXPECT_NE(error_of(c, "attention", "").find("unknown selector 'attention'"), std::string::npos);
  EXPECT_NE(error_of(c, "blk.*.lora_a", "").find("no tensor is named like"), std::string::npos);
  EXPECT_NE(error_of(c, "blocks=2-1", "").find("blocks=2-1"), std::string::npos);
  EXPECT_NE(error_of(c, "new", "new").find("nothing to train"), std::string::npos);
  EXPECT_NE(error_of(c, "", "--freeze").find("unknown selector"), std::string::npos);
}

std::string corpus() {
  std::string t;
  const char* words[] = {"and", "the", "lord", "said", "unto", "moses", "in", "beginning", "god", "created"};
  Rng rng(11);
  while (t.size() < 400000) {
    const int n = 5 + static_cast<int>(rng.below(10));
    for (int i = 0; i < n; ++i) {
      t += words[rng.below(10)];
      t += i + 1 < n ? " " : ".\n";
    }
  }
  return t;
}

struct Fixture {
  std::string text = corpus();
  tokenizer::BpeTokenizer tok = [this] {
    tokenizer::TrainOptions o;
    o.vocab_size = 300;
    return *tokenizer::BpeTokenizer::train(train::split_corpus(text).train, o);
  }();
  train::TrainOptions opt = [] {
    train::TrainOptions o;
    o.steps = 8;
    o.batch = 2;
    o.ctx = 32;
    o.lr = 3e-3f;
    o.warmup = 1;
    o.eval_batches = 1;
    return o;
  }();
  std::vector<bool> on(const model::Model& m, const std::string& only, const std::string& freeze = "") const {
    auto r = model::resolve_trainable(m.config(), m.layout(), only, freeze);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return *r;
  }
};

std::unique_ptr<model::Model> initialised(const Fixture& fx) {
  auto m = std::make_unique<model::Model>(config(fx.tok.vocab_size(), true));
  Rng rng(7);
  m->init(rng);
  return m;
}

TEST(Trainable, TrainedGradientsEqualTheFullRunsAndFrozenOnesAreNotComputed) {
  Fixture fx;
  ThreadPool pool(2);
  Arena arena;
  std::vector<int32_t> in(2 * 32), tg(2 * 32);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<int32_t>((i * 31 + 7) % fx.tok.vocab_size()),
                                         tg[i] = static_cast<int32_t>((i * 17 + 3) % fx.tok.vocab_size());
  auto full = initialised(fx);
  full->zero_grads();
  full->forward_backward(pool, arena, in.data(), tg.data(), 2, 32, 1.0f / 64);
  for (const char* only : {"blocks=2-3", "new", "blocks=1,norms", "head", "embeddings"}) {
    auto sub = initialised(fx);
    sub->set_trainable(fx.on(*sub, only));
    sub->zero_grads();
    sub->forward_backward(pool, arena, in.data(), tg.data(), 2, 32, 1.0f / 64);
    int trained = 0;
    for (const auto& t : sub->layout().tensors()) {
      const float* g = sub->grads() + t.offset;
      if (t.trainable) {
        ++trained;
        EXPECT_EQ(std::memcmp(g, full->grads() + t.offset, t.numel * sizeof(float)), 0) << only << ": " << t.name;
      } else {
        for (int64_t i = 0; i < t.numel; ++i) ASSERT_EQ(g[i], 0.0f) << only << ": frozen " << t.name << " got a gradient";
      }
    }
    EXPECT_GT(trained, 0) << only;
  }
}

TEST(Trainable, FrozenTensorsStayByteIdenticalAndHaveNoOptimizerState) {
  Fixture fx;
  ThreadPool pool(2);
  auto m = initialised(fx);
  std::vector<float> before(m->params(), m->params() + m->layout().total());
  train::Trainer tr(std::move(m), fx.tok, fx.opt, pool);
  tr.set_trainable(fx.on(tr.model(), "new"));
  ASSERT_TRUE(tr.set_corpus(fx.text).ok());
  for (int i = 0; i < 8; ++i) tr.step();
  int64_t trainable_floats = 0;
  for (const auto& t : tr.model().layout().tensors()) {
    const bool same = std::memcmp(tr.model().params() + t.offset, before.data() + t.offset, t.numel * sizeof(float)) == 0;
    int layer = t.layer;
    const bool added = layer == 1 || layer == 3;
    EXPECT_EQ(t.trainable, added) << t.name;
    EXPECT_EQ(same, !added) << t.name << (added ? " did not train" : " changed while frozen");
    if (t.trainable) trainable_floats += (t.numel + 15) & ~int64_t(15);
  }
  // The state file's moments: the trainable tensors only.
  const std::string path = ::testing::TempDir() + "/subset.gguf";
  ASSERT_TRUE(tr.save(path).ok());
  auto f = io::GgufFile::open(train::state_path(path));
  ASSERT_TRUE(f.ok());
  const io::GgufTensorInfo* mom = f->find_tensor("adamw.m");
  ASSERT_NE(mom, nullptr);
  EXPECT_EQ(mom->dims[0], trainable_floats);
  EXPECT_LT(trainable_floats, tr.model().layout().total() / 2);
  std::filesystem::remove(path);
  std::filesystem::remove(train::state_path(path));
}

TEST(Trainable, ResumedSubsetRunIsBitIdenticalAndAnotherSubsetIsRefused) {
  Fixture fx;
  ThreadPool pool(2);
  const std::string path = ::testing::TempDir() + "/subset_resume.gguf";
  std::vector<double> straight, resumed;
  {
    train::Trainer tr(initialised(fx), fx.tok, fx.opt, pool);
    tr.set_trainable(fx.on(tr.model(), "blocks=2-3", "norms"));
    ASSERT_TRUE(tr.set_corpus(fx.text).ok());
    for (int i = 0; i < 8; ++i) straight.push_back(tr.step().loss);
  }
  {
    train::Trainer tr(initialised(fx), fx.tok, fx.opt, pool);
    tr.set_trainable(fx.on(tr.model(), "blocks=2-3", "norms"));
    ASSERT_TRUE(tr.set_corpus(fx.text).ok());
    for (int i = 0; i < 3; ++i) resumed.push_back(tr.step().loss);
    ASSERT_TRUE(tr.save(path).ok());
  }
  auto names = train::saved_trainable(path);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 2 * 7u);
  {
    auto loaded = model::load_checkpoint(path);
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    EXPECT_EQ(loaded->model->config().added_layers, (std::vector<int>{1, 3}));
    train::Trainer other(std::make_unique<model::Model>(loaded->model->config()), fx.tok, fx.opt, pool);
    other.set_trainable(fx.on(other.model(), "blocks=3"));
    const Status s = other.load_state(path);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("trains 9"), std::string::npos) << s.message();

    train::Trainer tr(std::move(loaded->model), loaded->tokenizer, fx.opt, pool);
    tr.set_trainable(fx.on(tr.model(), "blocks=2-3", "norms"));
    ASSERT_TRUE(tr.load_state(path).ok());
    ASSERT_TRUE(tr.set_corpus(fx.text).ok());
    while (tr.current_step() < 8) resumed.push_back(tr.step().loss);
  }
  ASSERT_EQ(resumed.size(), straight.size());
  for (size_t i = 0; i < straight.size(); ++i) EXPECT_EQ(resumed[i], straight[i]) << "step " << i + 1;
  std::filesystem::remove(path);
  std::filesystem::remove(train::state_path(path));
}

}  // namespace
}  // namespace longctx
