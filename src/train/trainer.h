// Trainer: drives a Model through AdamW steps on a corpus, evaluates on the held-out part,
// checkpoints atomically, and stops cleanly on request (SIGINT / SIGTERM set `stop`).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "dist/comm.h"
#include "model/model.h"
#include "tokenizer/bpe.h"
#include "train/data.h"
#include "train/optimizer.h"

namespace longctx::train {

struct TrainOptions {
  int64_t steps = 2000;
  int64_t batch = 16;
  int64_t ctx = 256;
  int64_t accum = 1;  // micro-batches per optimizer step (gradient accumulation)
  float lr = 2e-3f;
  float min_lr = 2e-4f;
  int64_t warmup = 50;
  AdamWOptions adamw;  // betas, eps, weight decay, gradient clipping
  int64_t eval_every = 200;
  int64_t eval_batches = 16;  // held-out batches per evaluation (0 = all)
  int64_t save_every = 500;
  uint64_t seed = 1;
  std::string out;  // checkpoint path ("" = never save)
  Status validate() const;
};

struct StepStats {
  int64_t step = 0;  // 1-based count of completed steps
  double loss = 0;
  float lr = 0;
  double grad_norm = 0;
  bool stop = false;  // some rank asked to stop (step(true) there): every rank stops after this step
  // Routed blocks (CoLT5): what this step's forward passes routed, per layer and router (this
  // rank's rows).
  std::vector<model::Model::LayerRouting> routing;
};

struct EvalStats {
  int64_t step = 0;
  double val_loss = 0;  // nats per token
  double val_bpb = 0;   // bits per byte
};

class Trainer {
 public:
  Trainer(std::unique_ptr<model::Model> model, tokenizer::BpeTokenizer tok, TrainOptions opt, ThreadPool& pool);

  // Tokenizes and splits the corpus. Errors when a part is too short for one window.
  Status set_corpus(const std::string& text);
  // Tokenized data as it is (chat data: read_chat_jsonl). Errors when a part is too short.
  Status set_data(TokenStream train, TokenStream val);
  // A fresh start: initialises the weights from the seed.
  void init_weights();
  // Trains only the tensors `on` marks (per tensor of the model's list; model::Model::
  // set_trainable). Before the first step and before load_state.
  void set_trainable(const std::vector<bool>& on);
  // Restores the optimizer state, step and RNG from the sibling of a checkpoint.
  Status load_state(const std::string& checkpoint_path);

  // Data-parallel training over the group's ranks (before the first step). Each micro-batch
  // is the same global batch of opt.batch windows drawn by every rank from the shared RNG;
  // rank r trains on its contiguous share of the windows, and the gradients are summed over
  // the ranks in buckets during backward (dist::GradReducer), so the step is the one a single
  // process takes with the same options, up to fp32 summation order. Held-out batches are
  // shared out the same way. Every rank keeps the whole model and optimizer state. Errors when
  // the batch has fewer windows than ranks. After load_state (which sets the batch).
  // seq_parallel: instead of sharing out windows, every window is split over the ranks
  // (dist::RingLayout's zig-zag chunks) and attention runs as a ring; gradients are summed the
  // same way, after backward (the ring's transfers use MPI during backward). Errors when the
  // window length is not a multiple of 2 x ranks or a layer's pattern is not causal or a window.
  Status set_group(dist::Group& group, int64_t bucket_floats, bool seq_parallel = false);
  const dist::GradReducer* reducer() const { return reducer_.get(); }

  // One optimizer step. `stop_requested`: this rank wants to stop; the returned stats say
  // whether any rank did (one reduction shared with the loss), so all ranks stop together.
  StepStats step(bool stop_requested = false);
  EvalStats evaluate();
  // Checkpoint + training state, both written atomically.
  Status save(const std::string& path);
  // What save() writes instead of a checkpoint (a LoRA run writes its adapter).
  void set_save_model(std::function<Status(const std::string& path)> f) { save_model_ = std::move(f); }

  int64_t current_step() const { return step_; }
  const TrainOptions& options() const { return opt_; }
  TrainOptions& options() { return opt_; }
  model::Model& model() { return *model_; }
  const tokenizer::BpeTokenizer& tokenizer() const { return tok_; }
  int64_t train_tokens() const { return static_cast<int64_t>(train_.tokens.size()); }
  int64_t val_tokens() const { return static_cast<int64_t>(val_.tokens.size()); }

 private:
  std::unique_ptr<model::Model> model_;
  tokenizer::BpeTokenizer tok_;
  TrainOptions opt_;
  ThreadPool& pool_;
  Arena arena_;
  Rng rng_;
  int64_t step_ = 0;
  AdamW adamw_;
  TokenStream train_, val_;
  std::vector<std::vector<int32_t>> inputs_, targets_;  // per micro-batch
  std::function<Status(const std::string&)> save_model_;
  dist::Group* group_ = &dist::Group::single();
  // Sequence parallel: this rank's rows of windows [batch, ctx] into local_in_ / local_tg_;
  // returns their length per window.
  int64_t split_windows(const std::vector<int32_t>& in, const std::vector<int32_t>& tg, int64_t batch);
  dist::SeqParallel sp_;
  bool seq_parallel_ = false;
  std::vector<int32_t> local_in_, local_tg_;  // sequence parallel: this rank's rows
  std::unique_ptr<dist::GradReducer> reducer_;
};

// The sibling file holding optimizer state: "run/ckpt.gguf" -> "run/ckpt.state.gguf".
std::string state_path(const std::string& checkpoint_path);
// The names of the tensors the run saved with `checkpoint_path` trained; empty when its state
// does not say (state files from before frozen subsets: every tensor trained).
Expected<std::vector<std::string>> saved_trainable(const std::string& checkpoint_path);

}  // namespace longctx::train
