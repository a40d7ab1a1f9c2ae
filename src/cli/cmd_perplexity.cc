// longctx perplexity -m MODEL -f FILE [--ctx N] [--stride S] [--chunks N] [--ubatch N]
//                    [--cache-type-k T] [--cache-type-v T] [-t N] [--json]
// Perplexity of a model (our checkpoints or a pretrained GGUF) over a whole text file, in
// windows of --ctx tokens (default: the model's context, at most 512), the way llama.cpp's
// perplexity tool is used to compare models and quantization types. Non-overlapping windows by
// default; --stride S scores only the last S tokens of windows advancing by S. Windows longer
// than --ubatch (default 512) run through the KV cache in passes of --ubatch tokens, so a 32K
// window needs logits and scratch for 512 rows, not 32K.
#include <unistd.h>

#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "eval/perplexity.h"
#include "model/pretrained.h"
#include "train/data.h"

namespace longctx::cli {
namespace {

struct PplFlags {
  std::string model, file;
  int ctx = 0, threads = 0;
  int64_t stride = 0, chunks = 0, ubatch = 512;
  std::string cache_k = "f32", cache_v = "f32";
  bool json = false, dequantize = false;
  LoraFlags lora;
};

int run_perplexity(const PplFlags& f) {
  if (f.ctx < 0 || f.stride < 0 || f.chunks < 0) return fail("--ctx, --stride and --chunks must be >= 0");
  if (f.ubatch < 1) return fail("--ubatch must be >= 1");
  auto kt = kvcache::parse_cache_type(f.cache_k), vt = kvcache::parse_cache_type(f.cache_v);
  if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
  if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  model::LoadOptions lo;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  if (Status s = apply_lora_flags(f.lora, *loaded->model); !s.ok()) return fail(s);
  const int L = f.ctx > 0 ? f.ctx : std::min(512, loaded->model->config().ctx);
  if (L > loaded->model->config().ctx) {
    model::ModelConfig cfg = loaded->model->config();
    cfg.ctx = L;
    auto m = loaded->model->with_config(cfg);
    if (!m.ok()) return fail("model '" + f.model + "': " + m.status().message());
    loaded->model = std::move(*m);
  }
  if (f.stride > L) return fail("--stride " + std::to_string(f.stride) + " is longer than --ctx " + std::to_string(L));
  auto text = train::read_corpus(f.file);
  if (!text.ok()) return fail(text.status());
  const train::TokenStream stream = train::tokenize_stream(loaded->tokenizer, *text);
  eval::EvalOptions opt;
  opt.stride = f.stride;
  opt.ubatch = f.ubatch;
  opt.k_type = *kt;
  opt.v_type = *vt;
  if (f.chunks > 0) opt.max_tokens = f.chunks * (f.stride > 0 ? f.stride : L);
  const bool tty = isatty(STDERR_FILENO) == 1;
  auto r = eval::evaluate_length(*loaded->model, pool, stream, L, opt, [&](int64_t done, int64_t total) {
    if (tty) std::fprintf(stderr, "\r\033[K[perplexity] window %lld / %lld", (long long)done, (long long)total);
  });
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!r.ok()) return fail(r.status().Wrap("'" + f.file + "'"));
  if (f.json) {
    nlohmann::json j = {{"model", f.model}, {"file", f.file},          {"ctx", L},
                        {"stride", f.stride}, {"windows", r->windows},  {"scored_tokens", r->scored_tokens},
                        {"loss", r->loss},    {"ppl", r->ppl},          {"bpb", r->bpb},
                        {"seconds", r->seconds}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("%s on %s: ctx %d, %lld windows, %lld tokens scored: perplexity %.4f, %.4f bits/byte (%.1f s)\n",
                f.model.c_str(), f.file.c_str(), L, (long long)r->windows, (long long)r->scored_tokens, r->ppl, r->bpb,
                r->seconds);
  }
  return 0;
}

}  // namespace

void register_perplexity(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("perplexity", "Perplexity of a model over a text file");
  auto f = std::make_shared<PplFlags>();
  c->add_option("-m,--model", f->model, "Model (GGUF)")->required();
  c->add_option("-f,--file", f->file, "Text file")->required();
  c->add_option("--ctx", f->ctx, "Window length in tokens (default: the model's context, at most 512)");
  c->add_option("--stride", f->stride, "Sliding windows advancing by S, scoring the last S (0: non-overlapping)");
  c->add_option("--chunks", f->chunks, "Score at most this many windows' worth of tokens (0: the whole file)");
  c->add_option("--ubatch", f->ubatch, "Windows longer than this run through the KV cache in passes of N tokens");
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->add_flag("--json", f->json, "One JSON object");
  add_dequantize_flag(c, f->dequantize);
  add_lora_flags(c, f->lora);
  add_cache_type_flags(c, f->cache_k, f->cache_v);
  c->callback([f, &cmds] { cmds.run = [f] { return run_perplexity(*f); }; });
}

}  // namespace longctx::cli
