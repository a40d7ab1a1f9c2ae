// longctx train --preset tiny --data corpus.txt [--tokenizer tok.gguf] --steps 2000 --ctx 256 --batch 16
//               -o run/ckpt.gguf [--resume run/ckpt.gguf] [--seed 1] [--eval-every 200]
//               [--save-every 500] [-t THREADS] [--json]
//               [--attn window:128,causal] [--rope-scaling yarn:4[,ORIG]]   (fresh models, --init)
//               [--init CKPT]   (stage two: the checkpoint's weights, a longer --ctx, a new optimizer)
//               [--train-only SEL] [--freeze SEL]   (a subset trains: model/trainable.h)
//               [--lora r=16,alpha=32,targets=q,k,v,o,gate,up,down]   (with --init BASE: an adapter, model/lora.h)
// mpirun -np N longctx train ...   (data-parallel over N ranks: dist/comm.h; --bucket-mib)
// mpirun -np N longctx train --seq-parallel N ...   (each window split over the ranks: dist/ring_attention.h)
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "attention/pattern.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"
#include "core/thread_pool.h"
#include "dist/comm.h"
#include "infer/chat_template.h"
#include "kernels/vec.h"
#include "model/checkpoint.h"
#include "model/config_overrides.h"
#include "model/lora.h"
#include "model/pretrained.h"
#include "model/trainable.h"
#include "position/rope.h"
#include "train/trainer.h"

namespace longctx::cli {
namespace {

volatile std::sig_atomic_t g_stop_signal = 0;
extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

struct TrainFlags {
  std::string data, tokenizer, out, resume, init;
  std::string train_only, freeze;  // model/trainable.h
  std::string lora;                // model/lora.h: train an adapter for --init's model
  float lora_dropout = 0;          // --lora-dropout P
  std::string chat_template;       // chat data (.jsonl): the template instead of the model's
  std::string base_arch;           // general.architecture of --init's file (the adapter's)
  std::string precision;           // --precision fp32|bf16|auto (apply_precision)
  model::ConfigOverrides arch;  // --preset (only when given), --pos, --norm, --mlp, --kv-heads, --layers, --attn, ...
  int vocab = 0, threads = 0;
  double bucket_mib = 8;  // data-parallel gradient buckets
  int seq_parallel = 0;   // ranks one window is split over (ring attention); 0: data parallel
  bool json = false, ctx_given = false;
  train::TrainOptions opt;
};

// The flag of a model setting (model/config_overrides.h names them as ModelConfig does).
std::string flag_of(const std::string& setting) { return with_flags("setting '" + setting + "'"); }

// Settings given with --resume (or, for the architecture, with --init) must agree with the
// checkpoint: the same command run again with --resume added goes on; a setting that would
// change the model is refused, naming both values.
Status check_agrees(const model::ConfigOverrides& o, const model::ModelConfig& c, const std::string& what,
                    const std::string& advice) {
  auto cs = model::conflicts(o, c);
  if (!cs.ok()) return cs.status();
  if (cs->empty()) return Status::Ok();
  const model::Conflict& k = cs->front();
  return Status::Error(flag_of(k.setting) + " " + k.asked + " conflicts with " + what + " (it has " + k.has + "; " +
                       advice + ")");
}

// Chat data for supervised fine-tuning: a .jsonl file (train::read_chat_jsonl).
bool is_chat_data(const std::string& path) {
  return path.size() > 6 && path.compare(path.size() - 6, 6, ".jsonl") == 0;
}

// Which tensors of `m` train: the flags, or on --resume without them the set the run saved, or
// every tensor.
Expected<std::vector<bool>> trainable_set(const TrainFlags& f, const model::Model& m) {
  const model::ParamLayout& layout = m.layout();
  if (!f.train_only.empty() || !f.freeze.empty())
    return model::resolve_trainable(m.config(), layout, f.train_only, f.freeze);
  std::vector<bool> on(layout.tensors().size(), true);
  if (f.resume.empty()) return on;
  auto names = train::saved_trainable(f.resume);
  if (!names.ok()) return names.status();
  if (names->empty()) return on;
  on.assign(on.size(), false);
  for (const std::string& n : *names) {
    const int i = layout.index(n);
    if (i < 0) return Status::Error("training state of '" + f.resume + "' trains tensor '" + n + "', which the model lacks");
    on[i] = true;
  }
  return on;
}

// A model file (a longctx checkpoint, a GGUF or Hugging Face model of a pretrained
// architecture) loaded to train: the tensors that train in fp32, the frozen matrices read in
// place in their file types (a quantized base stays quantized). `on` gets the trainable set.
Expected<model::LoadedModel> load_for_training(const TrainFlags& f, const std::string& path, std::vector<bool>* on) {
  model::LoadOptions lo;
  {
    auto probe = model::load_model(path, lo);  // everything it can mapped: cheap
    if (!probe.ok()) return probe.status();
    auto r = trainable_set(f, *probe->model);
    if (!r.ok()) return r.status();
    *on = std::move(*r);
    const auto& ts = probe->model->layout().tensors();
    for (size_t i = 0; i < ts.size(); ++i)
      if ((*on)[i]) lo.fp32.insert(ts[i].name);
  }
  return model::load_model(path, lo);
}

// The model and tokenizer a run trains: the checkpoint resumed, a second stage or a fine-tune
// from --init's weights, or a fresh model (a tokenizer trained on the corpus unless --tokenizer
// gives one). `on`: the tensors that train (empty: all).
Expected<model::LoadedModel> model_for_run(TrainFlags& f, const std::string& text, std::vector<bool>* on) {
  using clock = std::chrono::steady_clock;
  if (!f.lora.empty()) {
    // An adapter for --init's model: every base tensor frozen (matrices read in place in their
    // file types), the LoRA tensors trained; --resume names the adapter of an earlier run.
    auto spec = layers::parse_lora(f.lora);
    if (!spec.ok()) return spec.status();
    if (!(f.lora_dropout >= 0 && f.lora_dropout < 1)) return Status::Error("--lora-dropout must be in [0, 1)");
    spec->dropout = f.lora_dropout;
    auto base = model::load_model(f.init, model::LoadOptions{});
    if (!base.ok()) return base.status();
    LONGCTX_RETURN_IF_ERROR(check_agrees(f.arch, base->model->config(), "the base model of --init", "its weights fix that"));
    model::ModelConfig cfg = base->model->config();
    if (!f.ctx_given) f.opt.ctx = cfg.ctx;
    if (f.opt.ctx > cfg.ctx) {
      LONGCTX_RETURN_IF_ERROR(model::check_context_growth(cfg, static_cast<int>(f.opt.ctx)));
      cfg.ctx = static_cast<int>(f.opt.ctx);
      auto grown = base->model->with_config(cfg);
      if (!grown.ok()) return grown.status();
      base->model = std::move(*grown);
    }
    Rng rng(f.opt.seed ^ 0x10a10a10aULL);
    auto m = base->model->with_lora(*spec, rng);
    if (!m.ok()) return m.status();
    if ((*m)->trainable_params() == 0) return Status::Error("--lora " + f.lora + ": its targets match no matrix of the model");
    if (!f.resume.empty()) LONGCTX_RETURN_IF_ERROR(model::load_lora_tensors(f.resume, **m));
    on->clear();
    for (const auto& t : (*m)->layout().tensors()) on->push_back(t.trainable);
    if (auto g = io::GgufFile::open(f.init); g.ok()) {
      auto a = g->get_string("general.architecture");
      f.base_arch = a.ok() ? *a : "llama";
    } else {
      f.base_arch = "llama";  // a Hugging Face directory of the llama family
    }
    return model::LoadedModel{std::move(*m), std::move(base->tokenizer)};
  }
  if (!f.resume.empty()) {
    auto loaded = load_for_training(f, f.resume, on);
    if (!loaded.ok()) return loaded.status();
    LONGCTX_RETURN_IF_ERROR(check_agrees(f.arch, loaded->model->config(), "the checkpoint being resumed",
                                         "leave the flag out to keep the checkpoint's"));
    return loaded;
  }
  if (!f.init.empty()) {
    // Stage two of context extension, or fine-tuning: the model's weights and config, a new
    // context (and optionally new patterns or RoPE scaling), a fresh optimizer.
    auto loaded = load_for_training(f, f.init, on);
    if (!loaded.ok()) return loaded.status();
    model::ModelConfig cfg = loaded->model->config();
    model::ConfigOverrides fixed = f.arch, extension;
    std::swap(fixed.attn, extension.attn);
    std::swap(fixed.rope_scaling, extension.rope_scaling);
    LONGCTX_RETURN_IF_ERROR(check_agrees(fixed, cfg, "the checkpoint of --init", "its weights fix that"));
    const int trained_ctx = cfg.ctx;
    if (!f.ctx_given) f.opt.ctx = cfg.ctx;
    cfg.ctx = std::max<int>(cfg.ctx, static_cast<int>(f.opt.ctx));
    // "yarn:F" without ORIG: the checkpoint's context is the one being extended.
    LONGCTX_RETURN_IF_ERROR(model::apply_overrides(extension, trained_ctx, &cfg));
    auto m = loaded->model->with_config(cfg);
    if (!m.ok()) return m.status().Wrap("--init '" + f.init + "'");
    return model::LoadedModel{std::move(*m), std::move(loaded->tokenizer)};
  }
  std::optional<tokenizer::BpeTokenizer> tok;
  if (!f.tokenizer.empty()) {
    auto t = model::load_tokenizer(f.tokenizer);
    if (!t.ok()) return t.status();
    tok.emplace(std::move(*t));
  } else {
    auto cfg0 = model::preset(f.arch.preset.empty() ? "tiny" : f.arch.preset, f.vocab);
    if (!cfg0.ok()) return cfg0.status();
    tokenizer::TrainOptions topt;
    topt.vocab_size = cfg0->vocab_size;
    auto t0 = clock::now();
    auto t = tokenizer::BpeTokenizer::train(train::split_corpus(text).train, topt);
    if (!t.ok()) return t.status();
    tok.emplace(std::move(*t));
    if (!f.json)
      std::printf("tokenizer: trained %d tokens in %.1f s\n", tok->vocab_size(),
                  std::chrono::duration<double>(clock::now() - t0).count());
  }
  auto cfg = model::config_from_overrides(f.arch, tok->vocab_size(), static_cast<int>(f.opt.ctx));
  if (!cfg.ok()) return cfg.status();
  return model::LoadedModel{std::make_unique<model::Model>(*cfg), std::move(*tok)};
}

// Routed blocks (CoLT5): rows routed and scored per (router, layer), summed over steps.
class RouteTally {
 public:
  void add(const std::vector<model::Model::LayerRouting>& counts) {
    for (const auto& c : counts) {
      auto& t = tally_[{c.count.router, c.layer}];
      t.first += c.count.routed;
      t.second += c.count.considered;
    }
  }
  bool empty() const { return tally_.empty(); }
  void clear() { tally_.clear(); }
  // [{"layer": 0, "router": "ffn", "fraction": 0.0625}, ...]
  nlohmann::json json() const {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [key, v] : tally_)
      out.push_back({{"layer", key.second}, {"router", key.first}, {"fraction", fraction(v)}});
    return out;
  }
  // " | routed ffn 6.2/5.9/6.4/6.0%": per router, the layers' percentages in layer order.
  std::string line() const {
    std::string out;
    std::string router;
    for (const auto& [key, v] : tally_) {
      char pct[32];
      std::snprintf(pct, sizeof pct, "%.1f", 100 * fraction(v));
      out += key.first != router ? (router.empty() ? " | routed " : "% ") + key.first + " " + pct : "/" + std::string(pct);
      router = key.first;
    }
    return out.empty() ? out : out + "%";
  }

 private:
  static double fraction(const std::pair<int64_t, int64_t>& v) {
    return v.second > 0 ? static_cast<double>(v.first) / static_cast<double>(v.second) : 0.0;
  }
  std::map<std::pair<std::string, int>, std::pair<int64_t, int64_t>> tally_;
};

int run_train_group(TrainFlags& f, dist::Group& group) {
  using clock = std::chrono::steady_clock;
  if (f.lora.empty() && f.lora_dropout != 0) return fail("--lora-dropout goes with --lora");
  if (!f.lora.empty()) {
    if (f.init.empty()) return fail("--lora trains an adapter for a model: give the model with --init");
    if (!f.train_only.empty() || !f.freeze.empty()) return fail("--lora trains only the adapter: leave out --train-only / --freeze");
  } else if (!f.resume.empty() && !f.init.empty()) {
    return fail("--init and --resume exclude each other (but for --lora: --init BASE --resume ADAPTER)");
  }
  if (!f.init.empty() && (!f.tokenizer.empty() || f.vocab > 0))
    return fail(std::string(f.vocab > 0 ? "--vocab-size" : "--tokenizer") +
                " cannot be combined with --init (the checkpoint's tokenizer is kept)");
  if (f.resume.empty() && f.init.empty()) {
    // A fresh model: bad architecture flags fail before the corpus is read or a tokenizer trained.
    auto cfg = model::config_from_overrides(f.arch, f.vocab > 0 ? f.vocab : 4096, static_cast<int>(f.opt.ctx));
    if (!cfg.ok()) return fail(cfg.status());
  }
  if (!(f.bucket_mib > 0 && f.bucket_mib <= 4096)) return fail("--bucket-mib must be in (0, 4096]");
  if (f.threads <= 0 && group.distributed()) {
    // Ranks sharing a machine share its cores.
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    const int ranks_here = local ? std::max(1, std::atoi(local)) : 1;
    f.threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / ranks_here);
  }
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  if (f.out.empty() && !f.resume.empty()) f.out = f.resume;
  Status valid = f.opt.validate();
  if (!valid.ok()) return fail(valid);
  if (f.out.empty()) return fail("-o/--output is required (where checkpoints are written)");
  {
    std::error_code ec;
    const auto dir = std::filesystem::path(f.out).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, ec);
    if (ec) return fail("cannot create the output directory '" + dir.string() + "': " + ec.message());
  }

  auto text = train::read_corpus(f.data);
  if (!text.ok()) return fail(text.status());

  std::vector<bool> on;
  auto run = model_for_run(f, *text, &on);
  if (!run.ok()) return fail(run.status());
  std::unique_ptr<model::Model> model = std::move(run->model);
  tokenizer::BpeTokenizer tok = std::move(run->tokenizer);
  const bool human = !f.json;
  if (!f.ctx_given && !f.resume.empty()) f.opt.ctx = model->config().ctx;  // resume: keep training length
  if (f.opt.ctx > model->config().ctx)
    return fail("--ctx " + std::to_string(f.opt.ctx) + " exceeds the model's context of " +
                std::to_string(model->config().ctx));

  if (on.empty()) {  // a fresh model: the flags choose among its tensors
    auto r = trainable_set(f, *model);
    if (!r.ok()) return fail(r.status());
    on = std::move(*r);
  }
  if (Status ps = apply_precision(f.precision, *model); !ps.ok()) return fail(ps.Wrap("train"));
  const char* precision = model->bf16() ? "bf16" : "fp32";
  const int64_t bucket_floats = static_cast<int64_t>(f.bucket_mib * (1 << 20) / sizeof(float));
  train::Trainer trainer(std::move(model), std::move(tok), f.opt, pool);
  trainer.set_trainable(on);
  if (!f.lora.empty())
    trainer.set_save_model([&trainer, &f](const std::string& path) {
      return model::save_lora_adapter(path, trainer.model(), f.base_arch);
    });
  if (!f.resume.empty()) {
    Status s = trainer.load_state(f.resume);
    if (!s.ok()) return fail(s);
  } else if (f.init.empty()) {
    trainer.init_weights();
  }
  if (f.seq_parallel != 0 && f.seq_parallel != group.size())
    return fail("--seq-parallel " + std::to_string(f.seq_parallel) + " must equal the job's rank count (" +
                std::to_string(group.size()) + "; start it with mpirun -np " + std::to_string(f.seq_parallel) + ")");
  if (Status gs = trainer.set_group(group, bucket_floats, f.seq_parallel > 1); !gs.ok()) return fail(gs);
  Status cs = Status::Ok();
  int64_t chat_conversations = 0, chat_tokens = 0;
  if (is_chat_data(f.data)) {
    // Supervised fine-tuning: conversations in the model's chat template, loss on the answers.
    const tokenizer::BpeTokenizer& tk = trainer.tokenizer();
    auto tmpl = infer::ChatTemplate::choose(tk.chat_template(), f.chat_template);
    if (!tmpl.ok())
      return fail(tmpl.status().Wrap("chat data needs the model's chat template (or --chat-template chatml|llama2|llama3|mistral)"));
    auto chat = train::read_chat_jsonl(f.data, tk, [&](const std::vector<train::ChatTurn>& turns, bool gen) {
      std::vector<infer::ChatMessage> ms;
      for (const auto& t : turns) ms.push_back({t.role, t.content});
      return tmpl->render(ms, gen);
    });
    if (!chat.ok()) return fail(chat.status());
    chat_conversations = chat->conversations;
    chat_tokens = chat->assistant_tokens;
    cs = trainer.set_data(std::move(chat->train), std::move(chat->val));
  } else {
    cs = trainer.set_corpus(*text);
  }
  if (!cs.ok()) return fail(cs);
  const train::TrainOptions& opt = trainer.options();
  const auto& mc = trainer.model().config();
  if (human) {
    std::string pos = model::pos_name(mc.pos);
    if (mc.rope_scaling.type != position::RopeScalingType::kNone)
      pos += " " + position::format_rope_scaling(mc.rope_scaling);
    std::printf("model: %d layers, dim %d, heads %d/%d, ff %d, vocab %d, %s, %s, %s, attn %s | %.2fM params\n",
                mc.n_layers(), mc.model_dim, mc.layers[0].heads, mc.layers[0].kv_heads, mc.layers[0].ff_dim,
                mc.vocab_size, pos.c_str(), model::norm_name(mc.norm), model::mlp_name(mc.mlp),
                model::pattern_summary(mc).c_str(), trainer.model().n_params() / 1e6);
    std::printf("data: %lld train tokens, %lld held-out tokens | batch %lld x ctx %lld x accum %lld | %d threads, %s, BLAS %s, "
                "%s products\n",
                (long long)trainer.train_tokens(), (long long)trainer.val_tokens(), (long long)opt.batch,
                (long long)opt.ctx, (long long)opt.accum, pool.threads(), kernels::simd_target_name(), blas_core_name(),
                precision);
    std::printf("%s", model::describe_trainable(trainer.model().layout()).c_str());
    if (chat_conversations > 0)
      std::printf("chat data: %lld conversations (every 20th held out), %lld assistant tokens trained on, template %s\n",
                  (long long)chat_conversations, (long long)chat_tokens,
                  f.chat_template.empty() ? "from the model" : f.chat_template.c_str());
    if (group.distributed() && f.seq_parallel > 1)
      std::printf("sequence parallel: %d ranks x %d threads, each window in %d zig-zag chunks of %lld positions, ring "
                  "attention; gradients summed after backward\n",
                  group.size(), pool.threads(), 2 * group.size(), (long long)(opt.ctx / (2 * group.size())));
    else if (group.distributed())
      std::printf("data parallel: %d ranks x %d threads, %lld windows per rank per micro-batch, gradients summed in "
                  "buckets of %.3g MiB during backward\n",
                  group.size(), pool.threads(), (long long)((opt.batch + group.size() - 1) / group.size()), f.bucket_mib);
    if (trainer.current_step() > 0) std::printf("resumed at step %lld\n", (long long)trainer.current_step());
  } else {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& t : trainer.model().layout().tensors())
      if (t.trainable) names.push_back(t.name);
    nlohmann::json j = {{"event", "trainable"},
                        {"tensors", names},
                        {"params", trainer.model().trainable_params()},
                        {"total_params", trainer.model().n_params()},
                        {"precision", precision}};
    std::printf("%s\n", j.dump().c_str());
  }

  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGUSR1, on_stop_signal);  // mpirun forwards SIGUSR1 to every rank
  const bool tty = human && stdout_is_tty();
  const int64_t tokens_per_step = opt.batch * opt.ctx * opt.accum;
  const auto start = clock::now();
  // Training rates count step time only (evaluation and saving excluded): the live line's over
  // the latest completed window of 20 steps or 2 s (before the first one, over every step so
  // far), each evaluation record's over the steps since the previous record.
  int64_t window_steps = 0, record_steps = 0;
  double window_s = 0, record_s = 0;
  bool have_window = false;
  double train_seconds = 0, rate = 0, last_val = NAN, last_bpb = NAN;
  const int64_t first_step = trainer.current_step();
  train::StepStats st;
  bool interrupted = false;
  RouteTally routed_record, routed_window, routed_run, routed_shown;

  auto emit_eval = [&](const train::EvalStats& e) {
    last_val = e.val_loss;
    last_bpb = e.val_bpb;
    const double record_rate = record_s > 0 ? record_steps * tokens_per_step / record_s : 0;
    record_steps = 0;
    record_s = 0;
    if (f.json) {
      nlohmann::json j = {{"event", "eval"},        {"step", e.step},         {"train_loss", st.loss},
                          {"val_loss", e.val_loss}, {"val_bpb", e.val_bpb},   {"tokens_per_s", record_rate},
                          {"lr", st.lr},            {"elapsed_s", std::chrono::duration<double>(clock::now() - start).count()}};
      if (!routed_record.empty()) j["routed"] = routed_record.json();
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%sstep %lld/%lld | loss %.4f | val loss %.4f | val %.4f bits/byte | lr %.2e | %s tok/s%s\n",
                  tty ? "\r\033[K" : "", (long long)e.step, (long long)opt.steps, st.loss, e.val_loss, e.val_bpb, st.lr,
                  format_rate(record_rate).c_str(), routed_record.line().c_str());
    }
    routed_record.clear();
    std::fflush(stdout);
  };

  while (trainer.current_step() < opt.steps) {
    auto t0 = clock::now();
    st = trainer.step(g_stop_signal != 0);
    const double step_s = std::chrono::duration<double>(clock::now() - t0).count();
    routed_record.add(st.routing);
    routed_window.add(st.routing);
    routed_run.add(st.routing);
    train_seconds += step_s;
    ++window_steps;
    ++record_steps;
    window_s += step_s;
    record_s += step_s;
    if (window_s > 2.0 || window_steps >= 20) {
      rate = window_steps * tokens_per_step / window_s;
      window_steps = 0;
      window_s = 0;
      have_window = true;
      routed_shown = routed_window;
      routed_window.clear();
    } else if (!have_window) {
      rate = (trainer.current_step() - first_step) * tokens_per_step / train_seconds;
    }
    if (!std::isfinite(st.loss)) return fail("training diverged: loss is " + std::to_string(st.loss) + " at step " +
                                             std::to_string(st.step) + " (try a lower --lr)");
    if (tty) {
      const double eta = (opt.steps - st.step) * tokens_per_step / std::max(rate, 1e-9);
      std::printf("\r\033[Kstep %lld/%lld | loss %.4f | val %s | lr %.2e | %s tok/s | ETA %s%s", (long long)st.step,
                  (long long)opt.steps, st.loss,
                  std::isfinite(last_val) ? (std::to_string(last_bpb).substr(0, 5) + " bpb").c_str() : "-", st.lr,
                  format_rate(rate).c_str(), format_duration(eta).c_str(),
                  (have_window ? routed_shown : routed_window).line().c_str());
      std::fflush(stdout);
    }
    const bool last = st.step == opt.steps;
    if ((opt.eval_every > 0 && st.step % opt.eval_every == 0) || last) {
      emit_eval(trainer.evaluate());
    }
    // A signal here (one process: also one that came during the step), or on any rank.
    if (st.stop || (!group.distributed() && g_stop_signal)) {
      interrupted = true;
      break;
    }
    if (opt.save_every > 0 && st.step % opt.save_every == 0 && !last) {
      Status s = group.root() ? trainer.save(f.out) : Status::Ok();
      if (!s.ok()) return fail(s);
    }
  }
  Status s = group.root() ? trainer.save(f.out) : Status::Ok();
  if (!s.ok()) return fail(s);
  const double wall = std::chrono::duration<double>(clock::now() - start).count();
  const int64_t steps_done = trainer.current_step() - first_step;
  const double avg_rate = train_seconds > 0 ? steps_done * tokens_per_step / train_seconds : 0;
  const dist::GradReducer* red = trainer.reducer();
  if (f.json) {
    nlohmann::json j = {{"event", "summary"}, {"step", trainer.current_step()}, {"steps_run", steps_done},
                        {"train_loss", st.loss}, {"val_loss", last_val}, {"val_bpb", last_bpb},
                        {"tokens_per_s", avg_rate}, {"elapsed_s", wall}, {"interrupted", interrupted},
                        {"checkpoint", f.out}, {"ranks", group.size()}};
    if (!routed_run.empty()) j["routed"] = routed_run.json();
    if (red && steps_done > 0) {
      const auto& rs = red->stats();
      j["allreduce"] = {{"bytes_per_step", rs.bytes / steps_done},
                        {"buckets_per_step", static_cast<double>(rs.buckets) / steps_done},
                        {"comm_s_per_step", rs.comm_s / steps_done},
                        {"exposed_s_per_step", rs.exposed_s / steps_done},
                        {"overlap", rs.comm_s > 0 ? std::max(0.0, 1.0 - rs.exposed_s / rs.comm_s) : 0.0}};
    }
    if (f.seq_parallel > 1 && steps_done > 0) {
      // Ring traffic of the training steps and the evaluations (rank 0's).
      const dist::RingStats ring = dist::ring_totals();
      j["ring"] = {{"bytes_sent", ring.bytes_sent}, {"attention_s", ring.compute_s}, {"wait_s", ring.wait_s}};
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    char val[32] = "not evaluated yet";
    if (std::isfinite(last_bpb)) std::snprintf(val, sizeof val, "%.4f bits/byte", last_bpb);
    std::printf("%s%s at step %lld/%lld after %s: loss %.4f, val %s, %s tok/s; checkpoint %s\n",
                tty ? "\r\033[K" : "", interrupted ? "interrupted" : "done", (long long)trainer.current_step(),
                (long long)opt.steps, format_duration(wall).c_str(), st.loss, val, format_rate(avg_rate).c_str(),
                f.out.c_str());
    if (!routed_run.empty()) std::printf("routed fraction over the run:%s\n", routed_run.line().substr(9).c_str());
    if (red && steps_done > 0) {
      const auto& rs = red->stats();
      std::printf("all-reduce: %.2f MiB per step in %.1f buckets, %.1f ms per step communicating, %.1f ms of it not "
                  "hidden behind backward\n",
                  rs.bytes / double(steps_done) / (1 << 20), double(rs.buckets) / steps_done, 1e3 * rs.comm_s / steps_done,
                  1e3 * rs.exposed_s / steps_done);
    }
  }
  return 0;
}

// Under an MPI launcher: rank 0 alone prints and writes checkpoints; an error on one rank
// ends the whole job (MPI_Abort), since the other ranks would wait for it forever.
int run_train(TrainFlags& f) {
  auto group = dist::Group::world();
  if (!group.ok()) return fail(group.status().Wrap("train"));
  dist::Group& g = **group;
  const int rc = !g.root() && !std::freopen("/dev/null", "w", stdout)
                     ? fail("rank " + std::to_string(g.rank()) + ": cannot silence stdout")
                     : run_train_group(f, g);
  std::fflush(stdout);
  if (rc != 0 && g.distributed()) {
    std::fprintf(stderr, "longctx train: rank %d of %d failed; ending the job\n", g.rank(), g.size());
    g.abort(rc);
  }
  g.barrier();  // rank 0's checkpoint is written before any rank exits
  return rc;
}

}  // namespace

void register_train(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("train", "Train a model from scratch or resume a checkpoint");
  auto f = std::make_shared<TrainFlags>();
  auto* preset = c->add_option("--preset", f->arch.preset, "Model preset: tiny (default) or small");
  c->add_option("--data", f->data,
                "Text corpus (split into train / held-out by a fixed rule), or chat data: a .jsonl file of "
                "{\"messages\": [...]} lines (loss on the assistant's turns)")->required();
  c->add_option("--chat-template", f->chat_template, "Chat data: chatml, llama2, llama3 or mistral (default: the model's)");
  c->add_option("--tokenizer", f->tokenizer, "Tokenizer GGUF (default: train one on the corpus)");
  c->add_option("-o,--output", f->out, "Checkpoint path (GGUF); state goes to <name>.state.gguf");
  c->add_option("--resume", f->resume, "Continue from this checkpoint");
  c->add_option("--init", f->init,
                "Start from this checkpoint's weights with a fresh optimizer (e.g. stage two at a longer --ctx)");
  c->add_option("--steps", f->opt.steps, "Optimizer steps");
  auto* ctx = c->add_option("--ctx", f->opt.ctx, "Sequence length of a training window (default: the model's context)");
  c->add_option("--batch", f->opt.batch, "Sequences per micro-batch");
  c->add_option("--accum", f->opt.accum, "Micro-batches per step (gradient accumulation)");
  c->add_option("--lr", f->opt.lr, "Peak learning rate");
  c->add_option("--min-lr", f->opt.min_lr, "Final learning rate of the cosine schedule");
  c->add_option("--warmup", f->opt.warmup, "Linear warmup steps");
  c->add_option("--weight-decay", f->opt.adamw.weight_decay, "AdamW decoupled weight decay (matrices and embeddings)");
  c->add_option("--clip", f->opt.adamw.clip, "Gradient-norm clipping threshold (0: off)");
  c->add_option("--seed", f->opt.seed, "Seed of initialisation and batch sampling");
  c->add_option("--eval-every", f->opt.eval_every, "Held-out evaluation every N steps (0: only at the end)");
  c->add_option("--eval-batches", f->opt.eval_batches, "Held-out batches per evaluation (0: all)");
  c->add_option("--save-every", f->opt.save_every, "Checkpoint every N steps (0: only at the end)");
  c->add_option("--pos", f->arch.pos, "Positions: none, learned, sinusoidal, rope, alibi");
  c->add_option("--norm", f->arch.norm, "layernorm or rmsnorm");
  c->add_option("--mlp", f->arch.mlp, "gelu or swiglu");
  c->add_option("--kv-heads", f->arch.kv_heads, "Key/value heads per layer (GQA / MQA)");
  c->add_option("--attn", f->arch.attn,
                "Attention pattern per layer, repeated over the layers: causal, window:W, bigbird:B,W,G,R[,SEED] "
                "(e.g. window:128,causal alternates local and global)");
  c->add_option("--rope-scaling", f->arch.rope_scaling,
                "RoPE scaling: none, linear:F, ntk:F, yarn:F or yarn:F,ORIG (ORIG defaults to the model's ctx)");
  c->add_option("--layers", f->arch.layers, "Override the preset's number of layers");
  c->add_option("--colt5", f->arch.colt5,
                "CoLT5 conditional computation in every layer: ffn=light:N,heavy:N,route:1/16 (a light feed-forward "
                "for every token, a heavy one for the routed fraction) and/or attn=window:128,light_heads:2,"
                "route_q:1/16,route_kv:1/8 (local attention on a few heads for every token, full attention between "
                "routed tokens on the others), parts joined by ';'; a part's layers:A-B limits it to those layers "
                "(docs/COLT5.md)");
  c->add_option("--train-only", f->train_only,
                "Train only these tensors: all, new (layers `expand` added), embeddings, head, norms, blocks=4,9,14 or "
                "blocks=0-3, or name patterns like blk.*.attn_q.weight (comma-separated)");
  c->add_option("--freeze", f->freeze, "Train everything but these tensors (the same selectors as --train-only)");
  c->add_option("--lora", f->lora,
                "Train a LoRA adapter for --init's model (base frozen, quantized matrices read in place): "
                "r=16,alpha=32,targets=q,k,v,o,gate,up,down; -o writes the adapter (llama.cpp's GGUF layout)");
  c->add_option("--lora-dropout", f->lora_dropout, "Dropout on the LoRA branches' input while training (default 0)");
  c->add_option("--vocab-size", f->vocab, "Vocabulary size when training the tokenizer");
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores; under mpirun, the cores shared by a machine's ranks)");
  c->add_option("--seq-parallel", f->seq_parallel,
                "Split every window over the job's N ranks (mpirun -np N; ring attention; --ctx a multiple of 2N; "
                "causal or window patterns)");
  c->add_option("--bucket-mib", f->bucket_mib,
                "Data-parallel training (mpirun -np N longctx train ...): MiB of gradients per all-reduce bucket (default 8)");
  add_precision_flag(c, f->precision, "auto");
  c->add_flag("--json", f->json, "One JSON object per line instead of the human display");
  c->callback([f, preset, ctx, &cmds] {
    if (preset->count() == 0) f->arch.preset.clear();
    f->ctx_given = ctx->count() > 0;
    cmds.run = [f] { return run_train(*f); };
  });
}

}  // namespace longctx::cli
