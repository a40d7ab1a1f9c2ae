// longctx eval -m CKPT --data FILE --lengths 128,256,512,1024,2048,4096 [--stride S]
//              [--max-tokens N] [--all] [--json] [--plot out.png] [-t N]
// Perplexity and bits per byte at each evaluation length on the held-out part of a corpus (the
// training split rule), or on the whole file with --all. The model is rebuilt for the longest
// length (RoPE tables, position limits); learned positions refuse lengths past their table.
// --plot draws the results with tools/plot_eval.py (matplotlib; Debian's python3-matplotlib).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "eval/perplexity.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "train/data.h"

#ifndef LONGCTX_TOOLS_DIR
#define LONGCTX_TOOLS_DIR "tools"
#endif

namespace longctx::cli {
namespace {

struct EvalFlags {
  std::string model, data, lengths = "128,256,512,1024,2048,4096", plot;
  int64_t stride = 0, max_tokens = 32768;
  int threads = 0;
  bool all = false, json = false;
};

Expected<std::vector<int64_t>> parse_lengths(const std::string& s) {
  std::vector<int64_t> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    char* end = nullptr;
    const long long v = std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end || v < 1 || v > (1 << 22))
      return Status::Error("--lengths: '" + item + "' is not a length in [1, 4194304]");
    out.push_back(v);
  }
  if (out.empty()) return Status::Error("--lengths is empty");
  return out;
}

// Runs tools/plot_eval.py on the JSON; the tools folder is the source tree's unless
// LONGCTX_TOOLS_DIR says otherwise, the interpreter Debian's python3 unless LONGCTX_PYTHON does.
Status draw_plot(const nlohmann::json& j, const std::string& png) {
  const std::string json_path = png + ".json";
  const std::string body = j.dump(1) + "\n";
  LONGCTX_RETURN_IF_ERROR(io::write_file_atomic(json_path, body.data(), body.size()));
  const char* tools = std::getenv("LONGCTX_TOOLS_DIR");
  const char* python = std::getenv("LONGCTX_PYTHON");
  std::string py = python ? python : (access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3");
  auto quote = [](const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
  };
  const std::string cmd = quote(py) + " " + quote(std::string(tools ? tools : LONGCTX_TOOLS_DIR) + "/plot_eval.py") +
                          " " + quote(json_path) + " -o " + quote(png);
  std::fflush(stdout);
  const int rc = std::system(cmd.c_str());
  if (rc != 0)
    return Status::Error("plotting failed (" + cmd + "); the results are in " + json_path +
                         " (needs matplotlib: apt-get install python3-matplotlib)");
  return Status::Ok();
}

int run_eval(const EvalFlags& f) {
  auto lengths = parse_lengths(f.lengths);
  if (!lengths.ok()) return fail(lengths.status());
  if (f.stride < 0) return fail("--stride must be >= 0");
  if (f.max_tokens < 0) return fail("--max-tokens must be >= 0");
  for (int64_t L : *lengths)
    if (f.stride > L)
      return fail("--stride " + std::to_string(f.stride) + " is longer than the length " + std::to_string(L));
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  auto loaded = model::load_checkpoint(f.model);
  if (!loaded.ok()) return fail(loaded.status());
  auto text = train::read_corpus(f.data);
  if (!text.ok()) return fail(text.status());
  const std::string part = f.all ? *text : train::split_corpus(*text).val;
  if (part.empty()) return fail("'" + f.data + "' has no held-out part (it is shorter than 20 blocks of 16 KiB); use --all");
  const train::TokenStream stream = train::tokenize_stream(loaded->tokenizer, part);

  // One model for every length: the context grows to the longest (learned positions cannot).
  model::ModelConfig cfg = loaded->model->config();
  const int trained_ctx = cfg.ctx;
  int64_t longest = 0;
  for (int64_t L : *lengths) longest = std::max(longest, L);
  cfg.ctx = std::max<int64_t>(cfg.ctx, longest);
  auto m = loaded->model->with_config(cfg);
  if (!m.ok()) return fail("checkpoint '" + f.model + "': " + m.status().message());
  model::Model& model = **m;

  const bool tty = isatty(STDERR_FILENO) == 1;
  FILE* table = f.json ? stderr : stdout;
  std::fprintf(table, "model %s (%s positions, trained context %d) | %s: %lld tokens | stride %s\n", f.model.c_str(),
               model::pos_name(cfg.pos), trained_ctx, f.all ? "whole file" : "held-out part",
               (long long)stream.tokens.size(), f.stride ? std::to_string(f.stride).c_str() : "none (non-overlapping)");
  std::fprintf(table, "| length | windows | scored tokens | loss | perplexity | bits/byte | tokens/s |\n|---|---|---|---|---|---|---|\n");
  nlohmann::json results = nlohmann::json::array();
  for (int64_t L : *lengths) {
    eval::EvalOptions opt{f.stride, f.max_tokens};
    auto r = eval::evaluate_length(model, pool, stream, L, opt, [&](int64_t done, int64_t total) {
      if (tty) std::fprintf(stderr, "\r\033[K[eval] length %lld: window %lld / %lld", (long long)L, (long long)done,
                            (long long)total);
    });
    if (tty) std::fprintf(stderr, "\r\033[K");
    if (!r.ok()) return fail(r.status());
    const double tps = r->windows * L / std::max(r->seconds, 1e-9);
    std::fprintf(table, "| %lld | %lld | %lld | %.4f | %.3f | %.4f | %s |\n", (long long)L, (long long)r->windows,
                 (long long)r->scored_tokens, r->loss, r->ppl, r->bpb, format_rate(tps).c_str());
    std::fflush(table);
    results.push_back({{"length", L},      {"stride", f.stride},          {"windows", r->windows},
                       {"scored_tokens", r->scored_tokens}, {"scored_bytes", r->scored_bytes},
                       {"loss", r->loss},  {"ppl", r->ppl},               {"bpb", r->bpb},
                       {"seconds", r->seconds}});
  }
  nlohmann::json j = {{"model", f.model},
                      {"position", model::pos_name(cfg.pos)},
                      {"trained_ctx", trained_ctx},
                      {"data", f.data},
                      {"part", f.all ? "all" : "held-out"},
                      {"stride", f.stride},
                      {"results", results}};
  if (f.json) std::printf("%s\n", j.dump().c_str());
  if (!f.plot.empty()) {
    Status st = draw_plot(j, f.plot);
    if (!st.ok()) return fail(st);
  }
  return 0;
}

}  // namespace

void register_eval(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("eval", "Perplexity and bits per byte against evaluation length");
  auto f = std::make_shared<EvalFlags>();
  c->add_option("-m,--model", f->model, "Checkpoint (GGUF)")->required();
  c->add_option("--data", f->data, "Text corpus; its held-out part (the training split rule) is evaluated")->required();
  c->add_option("--lengths", f->lengths, "Comma-separated evaluation lengths in tokens");
  c->add_option("--stride", f->stride, "Sliding windows advancing by S tokens, scoring the last S (0: non-overlapping)");
  c->add_option("--max-tokens", f->max_tokens, "Score about this many tokens per length (0: all)");
  c->add_flag("--all", f->all, "Evaluate the whole file instead of its held-out part");
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->add_flag("--json", f->json, "One JSON object on stdout (the table goes to stderr)");
  c->add_option("--plot", f->plot, "Draw perplexity against length into this PNG (tools/plot_eval.py)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_eval(*f); }; });
}

}  // namespace longctx::cli
