#include "train/trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/gguf.h"
#include "model/checkpoint.h"
#include "train/schedule.h"

namespace longctx::train {

Status TrainOptions::validate() const {
  auto bad = [](const std::string& m) { return Status::Error("invalid training option: " + m); };
  if (steps < 1) return bad("setting 'steps' must be >= 1");
  if (batch < 1) return bad("setting 'batch' must be >= 1");
  if (ctx < 1) return bad("setting 'ctx' must be >= 1");
  if (accum < 1) return bad("setting 'accum' must be >= 1");
  if (!(lr > 0) || !std::isfinite(lr)) return bad("setting 'lr' must be > 0");
  if (!(min_lr >= 0) || min_lr > lr) return bad("setting 'min_lr' must be in [0, lr]");
  if (warmup < 0) return bad("setting 'warmup' must be >= 0");
  if (!(adamw.weight_decay >= 0)) return bad("setting 'weight_decay' must be >= 0");
  if (!(adamw.beta1 >= 0 && adamw.beta1 < 1) || !(adamw.beta2 >= 0 && adamw.beta2 < 1)) return bad("betas must be in [0, 1)");
  if (eval_every < 0 || save_every < 0) return bad("setting 'eval_every' and setting 'save_every' must be >= 0");
  return Status::Ok();
}

std::string state_path(const std::string& p) {
  const std::string ext = ".gguf";
  if (p.size() > ext.size() && p.compare(p.size() - ext.size(), ext.size(), ext) == 0)
    return p.substr(0, p.size() - ext.size()) + ".state.gguf";
  return p + ".state.gguf";
}

Trainer::Trainer(std::unique_ptr<model::Model> model, tokenizer::BpeTokenizer tok, TrainOptions opt,
                 ThreadPool& pool)
    : model_(std::move(model)),
      tok_(std::move(tok)),
      opt_(std::move(opt)),
      pool_(pool),
      rng_(opt_.seed),
      adamw_(model_->layout()) {}

void Trainer::set_trainable(const std::vector<bool>& on) {
  CHECK_MSG(step_ == 0, "set_trainable after training started");
  model_->set_trainable(on);
  adamw_ = AdamW(model_->layout());
}

namespace {
std::vector<std::string> trainable_names(const model::ParamLayout& layout) {
  std::vector<std::string> out;
  for (const auto& t : layout.tensors())
    if (t.trainable) out.push_back(t.name);
  return out;
}
}  // namespace

Expected<std::vector<std::string>> saved_trainable(const std::string& checkpoint_path) {
  const std::string sp = state_path(checkpoint_path);
  auto f = io::GgufFile::open(sp);
  if (!f.ok()) return f.status();
  if (!f->find("train.trainable")) return std::vector<std::string>{};
  auto names = f->get_string_array("train.trainable");
  if (!names.ok()) return names.status().Wrap("training state '" + sp + "'");
  return *names;
}

Status Trainer::set_corpus(const std::string& text) {
  CorpusSplit split = split_corpus(text);
  return set_data(tokenize_stream(tok_, split.train), tokenize_stream(tok_, split.val));
}

Status Trainer::set_data(TokenStream train, TokenStream val) {
  train_ = std::move(train);
  val_ = std::move(val);
  const int64_t need = opt_.ctx + 1;
  if (static_cast<int64_t>(train_.tokens.size()) < need)
    return Status::Error("corpus too short: the training part has " + std::to_string(train_.tokens.size()) +
                         " tokens, a window needs " + std::to_string(need));
  if (static_cast<int64_t>(val_.tokens.size()) < need)
    return Status::Error("corpus too short: the held-out part (every 20th 16 KiB block) has " +
                         std::to_string(val_.tokens.size()) + " tokens, a window needs " + std::to_string(need));
  return Status::Ok();
}

void Trainer::init_weights() {
  Rng init_rng(opt_.seed ^ 0x5eed5eed5eedULL);
  model_->init(init_rng);
}

Status Trainer::set_group(dist::Group& group, int64_t bucket_floats, bool seq_parallel) {
  seq_parallel_ = seq_parallel && group.distributed();
  if (seq_parallel_) {
    for (const auto& layer : model_->config().layers) {
      LONGCTX_RETURN_IF_ERROR(dist::check_ring(layer.pattern, opt_.ctx, group.size()).Wrap("--seq-parallel"));
      for (const auto& b : layer.blocks)
        if (b.kind == "routed_attention")
          return Status::Error("--seq-parallel: routed attention (CoLT5) does not run as a ring yet; train it data "
                               "parallel");
    }
    sp_ = dist::SeqParallel{&group, opt_.ctx};
    model_->set_seq_parallel(&sp_);
  } else if (opt_.batch < group.size()) {
    return Status::Error("--batch " + std::to_string(opt_.batch) + " is the global batch of windows, shared out over " +
                         std::to_string(group.size()) + " ranks: it needs at least one window per rank");
  }
  group_ = &group;
  reducer_.reset();
  if (group.distributed())
    reducer_ = std::make_unique<dist::GradReducer>(group, model_->grads(), model_->layout().total(), bucket_floats);
  return Status::Ok();
}

int64_t Trainer::split_windows(const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t batch) {
  const dist::RingLayout lay = sp_.layout();
  const int64_t n = lay.local_rows();
  local_in_.resize(batch * n);
  local_tg_.resize(batch * n);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < n; ++t) {
      local_in_[b * n + t] = in[b * opt_.ctx + lay.position(t)];
      local_tg_[b * n + t] = tg[b * opt_.ctx + lay.position(t)];
    }
  return n;
}

namespace {
// Rank r's share of n items: [n * r / size, n * (r + 1) / size).
std::pair<int64_t, int64_t> share(int64_t n, int rank, int size) {
  return {n * rank / size, n * (rank + 1) / size};
}
}  // namespace

StepStats Trainer::step(bool stop_requested) {
  model::Model& m = *model_;
  m.zero_grads();
  m.take_route_counts();  // drop what evaluations routed
  Batcher batcher(&train_, opt_.batch, opt_.ctx);
  // The loss is the mean over the targets that count (all of them but in chat data).
  inputs_.resize(opt_.accum);
  targets_.resize(opt_.accum);
  int64_t counted = 0;
  for (int64_t a = 0; a < opt_.accum; ++a) {
    batcher.sample(rng_, inputs_[a], targets_[a]);
    for (int32_t t : targets_[a]) counted += t >= 0;
  }
  counted = std::max<int64_t>(counted, 1);
  const float scale = 1.0f / static_cast<float>(counted);
  const auto [lo, hi] = share(opt_.batch, group_->rank(), group_->size());
  if (reducer_) reducer_->begin_step();
  const std::function<void(int64_t)> ready = [&](int64_t offset) { reducer_->ready_from(offset); };
  double loss = 0;
  for (int64_t a = 0; a < opt_.accum; ++a) {
    // LoRA dropout: a fresh mask per micro-batch, from the run's RNG (so a resumed run draws
    // the same ones). No draw without dropout: other runs keep their batches.
    if (m.config().lora.dropout > 0) m.set_dropout_seed(rng_.next() | 1);
    const bool last = a + 1 == opt_.accum;
    if (seq_parallel_) {
      const int64_t n = split_windows(inputs_[a], targets_[a], opt_.batch);
      loss += m.forward_backward(pool_, arena_, local_in_.data(), local_tg_.data(), opt_.batch, n, scale);
      continue;
    }
    loss += m.forward_backward(pool_, arena_, inputs_[a].data() + lo * opt_.ctx, targets_[a].data() + lo * opt_.ctx,
                               hi - lo, opt_.ctx, scale, reducer_ && last ? ready : std::function<void(int64_t)>{});
  }
  bool stop = stop_requested;
  if (reducer_) {
    reducer_->finish();
    double shared[2] = {loss, stop_requested ? 1.0 : 0.0};
    group_->sum(shared, 2);
    loss = shared[0];
    stop = shared[1] > 0;
  }
  loss /= static_cast<double>(counted);

  const float lr = lr_at(step_, opt_.steps, opt_.warmup, opt_.lr, opt_.min_lr);
  const int64_t t = step_ + 1;
  train::AdamWOptions adamw = opt_.adamw;
  adamw.statistic_scale = 1.0f / static_cast<float>(opt_.accum * group_->size());
  const double norm = adamw_.step(pool_, m, lr, t, adamw);
  step_ = t;
  return StepStats{step_, loss, lr, norm, stop, m.take_route_counts()};
}

EvalStats Trainer::evaluate() {
  Batcher batcher(&val_, opt_.batch, opt_.ctx);
  int64_t n = batcher.sequential_batches();
  if (opt_.eval_batches > 0) n = std::min(n, opt_.eval_batches);
  std::vector<int32_t> in, tg;
  double loss = 0;
  int64_t tokens = 0, bytes = 0;
  // One batch's summed loss, its counted targets and bytes: sequence parallel, every rank takes
  // its rows of every batch (the bytes counted once, on rank 0).
  auto run = [&](int64_t rows) {
    if (!seq_parallel_) {
      loss += model_->forward_loss(pool_, arena_, in.data(), tg.data(), rows, opt_.ctx);
      for (int32_t t : tg) tokens += t >= 0;
      return;
    }
    const int64_t len = split_windows(in, tg, rows);
    loss += model_->forward_loss(pool_, arena_, local_in_.data(), local_tg_.data(), rows, len);
    for (int64_t i = 0; i < rows * len; ++i) tokens += local_tg_[i] >= 0;
  };
  const bool all_ranks = seq_parallel_;
  // A held-out part shorter than one full batch still gets one (smaller) batch.
  if (n == 0 && (group_->root() || all_ranks)) {
    Batcher one(&val_, 1, opt_.ctx);
    int64_t b = 0;
    one.sequential(0, in, tg, &b);
    run(1);
    if (group_->root()) bytes = b;
  }
  // Data parallel: batch i is evaluated by rank i % size; the sums are added over the ranks.
  const int64_t first = all_ranks ? 0 : group_->rank(), stride = all_ranks ? 1 : group_->size();
  for (int64_t i = first; i < n; i += stride) {
    int64_t b = 0;
    batcher.sequential(i, in, tg, &b);
    run(opt_.batch);
    if (!all_ranks || group_->root()) bytes += b;
  }
  if (group_->distributed()) {
    double sums[3] = {loss, static_cast<double>(tokens), static_cast<double>(bytes)};
    group_->sum(sums, 3);
    loss = sums[0];
    tokens = static_cast<int64_t>(sums[1]);
    bytes = static_cast<int64_t>(sums[2]);
  }
  tokens = std::max<int64_t>(tokens, 1);
  bytes = std::max<int64_t>(bytes, 1);
  EvalStats e;
  e.step = step_;
  e.val_loss = loss / static_cast<double>(tokens);
  e.val_bpb = loss / (std::log(2.0) * static_cast<double>(bytes));
  return e;
}

Status Trainer::save(const std::string& path) {
  LONGCTX_RETURN_IF_ERROR(save_model_ ? save_model_(path) : model::save_checkpoint(path, *model_, tok_));
  io::GgufWriter w;
  w.set_string("general.type", "longctx.train_state");
  w.set_u64("train.step", static_cast<uint64_t>(step_));
  const uint64_t* st = rng_.state();
  for (int i = 0; i < 4; ++i) w.set_u64("train.rng." + std::to_string(i), st[i]);
  w.set_u64("train.steps", opt_.steps);
  w.set_u64("train.batch", opt_.batch);
  w.set_u64("train.ctx", opt_.ctx);
  w.set_u64("train.accum", opt_.accum);
  w.set_u64("train.warmup", opt_.warmup);
  w.set_f32("train.lr", opt_.lr);
  w.set_f32("train.min_lr", opt_.min_lr);
  w.set_u64("train.seed", opt_.seed);
  w.set_string_array("train.trainable", trainable_names(model_->layout()));
  const int64_t total = adamw_.floats();
  LONGCTX_RETURN_IF_ERROR(w.add_tensor("adamw.m", {total}, 0, adamw_.m().data(), total * sizeof(float)));
  LONGCTX_RETURN_IF_ERROR(w.add_tensor("adamw.v", {total}, 0, adamw_.v().data(), total * sizeof(float)));
  return w.write(state_path(path));
}

Status Trainer::load_state(const std::string& checkpoint_path) {
  const std::string sp = state_path(checkpoint_path);
  auto f = io::GgufFile::open(sp);
  if (!f.ok()) return f.status();
  auto fail = [&](const std::string& m) { return Status::Error("training state '" + sp + "': " + m); };
  auto u = [&](const std::string& key) -> Expected<uint64_t> { return f->get_uint(key); };
  auto step = u("train.step");
  if (!step.ok()) return step.status().Wrap("training state '" + sp + "'");
  uint64_t st[4];
  for (int i = 0; i < 4; ++i) {
    auto r = u("train.rng." + std::to_string(i));
    if (!r.ok()) return r.status().Wrap("training state '" + sp + "'");
    st[i] = *r;
  }
  // The run's shape comes from the state so the resumed run draws the same batches;
  // --steps may still be raised to extend a run.
  auto batch = u("train.batch"), ctx = u("train.ctx"), accum = u("train.accum"), warmup = u("train.warmup"),
       steps = u("train.steps"), seed = u("train.seed");
  auto lr = f->get_float("train.lr"), min_lr = f->get_float("train.min_lr");
  for (const Status& s : {batch.status(), ctx.status(), accum.status(), warmup.status(), steps.status(),
                          seed.status(), lr.status(), min_lr.status()})
    if (!s.ok()) return s.Wrap("training state '" + sp + "'");
  if (*batch < 1 || *batch > (1u << 20) || *ctx < 1 || *ctx > static_cast<uint64_t>(model_->config().ctx) ||
      *accum < 1 || *accum > (1u << 20))
    return fail("batch / ctx / accum out of range");
  opt_.batch = static_cast<int64_t>(*batch);
  opt_.ctx = static_cast<int64_t>(*ctx);
  opt_.accum = static_cast<int64_t>(*accum);
  opt_.warmup = static_cast<int64_t>(*warmup);
  opt_.lr = static_cast<float>(*lr);
  opt_.min_lr = static_cast<float>(*min_lr);
  opt_.seed = *seed;
  if (opt_.steps < static_cast<int64_t>(*steps)) opt_.steps = static_cast<int64_t>(*steps);
  if (f->find("train.trainable")) {
    auto names = f->get_string_array("train.trainable");
    if (!names.ok()) return names.status().Wrap("training state '" + sp + "'");
    const std::vector<std::string> now = trainable_names(model_->layout());
    if (*names != now)
      return fail("it was saved training " + std::to_string(names->size()) + " tensors, this run trains " +
                  std::to_string(now.size()) + " (give the run's --train-only / --freeze again, or none)");
  }
  const int64_t total = adamw_.floats();
  for (auto [name, buf] : {std::pair{"adamw.m", &adamw_.m()}, std::pair{"adamw.v", &adamw_.v()}}) {
    const io::GgufTensorInfo* t = f->find_tensor(name);
    if (!t) return fail(std::string("tensor '") + name + "' is missing");
    if (t->type != 0 || t->dims.size() != 1 || t->dims[0] != total)
      return fail(std::string("tensor '") + name + "' does not match the trainable parameter count");
    std::memcpy(buf->data(), t->data, total * sizeof(float));
  }
  step_ = static_cast<int64_t>(*step);
  rng_.set_state(st);
  return Status::Ok();
}

}  // namespace longctx::train
