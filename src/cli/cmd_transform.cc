// longctx summarize -m MODEL (-p TEXT | -f FILE) [-n 256] [--ctx N] [--json]
// longctx translate -m MODEL --to LANG (-p TEXT | -f FILE) ...
// longctx rewrite   -m MODEL --style STYLE (-p TEXT | -f FILE) ...
// Text tasks through the model's chat template: one user message (the task's instruction, then
// the text), the answer generated (greedy by default). A text too long for the context is cut
// into chunks at whitespace (rag::chunk_text): each chunk is done on its own (a live line shows
// the progress); translations and rewrites are joined, summaries are summarised again, map-reduce,
// until one pass holds them.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/chat_template.h"
#include "infer/session.h"
#include "io/atomic_file.h"
#include "model/pretrained.h"
#include "rag/index.h"

namespace longctx::cli {
namespace {

enum class Task { kSummarize, kTranslate, kRewrite };

struct TransformFlags {
  Task task = Task::kSummarize;
  std::string model, prompt, file, to, style, chat_template;
  int64_t n = 256;
  int ctx = 0, threads = 0;
  bool json = false, dequantize = false;
  infer::SamplerOptions s;
};

std::string instruction(const TransformFlags& f, bool partial) {
  switch (f.task) {
    case Task::kTranslate:
      return "Translate the following text into " + f.to + ". Answer with the translation only.";
    case Task::kRewrite:
      return "Rewrite the following text in a " + f.style + " style, keeping its meaning. Answer with the rewritten text only.";
    case Task::kSummarize:
      break;
  }
  return partial ? "Summarize the following part of a longer text in a few sentences."
                 : "Summarize the following text in a few sentences.";
}

class Runner {
 public:
  Runner(model::Model& m, const tokenizer::BpeTokenizer& tok, const infer::ChatTemplate& chat,
         const infer::SamplerOptions& s, int64_t n)
      : m_(m), tok_(tok), chat_(chat), s_(s), n_(n), session_(m, tok, ThreadPool::global()) {
    const std::vector<int32_t> eot = tok.encode_special(chat.end_of_turn());
    if (eot.size() == 1) stop_ = eot;
  }
  std::vector<int32_t> prompt(const std::string& instr, const std::string& text) const {
    std::vector<int32_t> ids;
    if (tok_.add_bos()) ids.push_back(tok_.bos_id());
    tok_.encode_append(chat_.render({{"user", instr + "\n\n" + text}}, true), ids, true);
    return ids;
  }
  // Tokens of the prompt for a text of `text_tokens` tokens, besides them.
  int64_t overhead(const std::string& instr) const { return static_cast<int64_t>(prompt(instr, "").size()); }
  Expected<std::string> run(const std::string& instr, const std::string& text) {
    const std::vector<int32_t> ids = prompt(instr, text);
    if (static_cast<int64_t>(ids.size()) + n_ > m_.config().ctx)
      return Status::Error("a prompt of " + std::to_string(ids.size()) + " tokens and -n " + std::to_string(n_) +
                           " do not fit the context of " + std::to_string(m_.config().ctx));
    // The chat prefix the previous chunk computed is kept only where rows are row-invariant
    // (integer prefill, AMX): elsewhere its rows were rounded as part of that pass, and a
    // chunk's answer must be what translating it alone gives.
    if (!m_.integer_prefill()) session_.reset();
    LONGCTX_RETURN_IF_ERROR(session_.set_tokens(ids, nullptr));
    infer::Sampler sampler(s_);
    std::string out;
    LONGCTX_RETURN_IF_ERROR(session_.continue_tokens(n_, sampler, stop_, [&](int32_t id) { out += tok_.token_bytes(id); }, nullptr));
    while (!out.empty() && (out.back() == ' ' || out.back() == '\n')) out.pop_back();
    size_t lead = 0;
    while (lead < out.size() && (out[lead] == ' ' || out[lead] == '\n')) ++lead;
    return out.substr(lead);
  }

 private:
  model::Model& m_;
  const tokenizer::BpeTokenizer& tok_;
  const infer::ChatTemplate& chat_;
  infer::SamplerOptions s_;
  int64_t n_;
  infer::Session session_;
  std::vector<int32_t> stop_;
};

int run_transform(const TransformFlags& f, const char* cmd) {
  const std::string c(cmd);
  if (f.prompt.empty() == f.file.empty()) return fail(c + ": give -p TEXT or -f FILE, not both");
  if (f.n < 1) return fail(c + ": -n must be >= 1");
  if (f.task == Task::kTranslate && f.to.empty()) return fail(c + ": --to LANG is required");
  if (f.task == Task::kRewrite && f.style.empty()) return fail(c + ": --style STYLE is required");
  if (Status sv = f.s.validate(); !sv.ok()) return fail(sv);
  std::string text = f.prompt;
  if (!f.file.empty()) {
    auto bytes = io::read_file(f.file);
    if (!bytes.ok()) return fail(bytes.status().Wrap(c));
    text = std::move(*bytes);
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) return fail(c + ": the text is empty");
  ThreadPool::set_default_threads(f.threads);
  model::LoadOptions lo;
  lo.ctx = f.ctx;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  loaded->model->set_integer_prefill(true);
  const tokenizer::BpeTokenizer& tok = loaded->tokenizer;
  auto chat = infer::ChatTemplate::choose(tok.chat_template(), f.chat_template);
  if (!chat.ok()) return fail(chat.status().Wrap("model '" + f.model + "' (give --chat-template)"));
  Runner runner(*loaded->model, tok, *chat, f.s, f.n);
  const int64_t ctx = loaded->model->config().ctx;
  const int64_t room = ctx - f.n - runner.overhead(instruction(f, true)) - 8;
  if (room < 32) return fail(c + ": the context of " + std::to_string(ctx) + " leaves no room for text besides -n " + std::to_string(f.n));
  const bool tty = isatty(STDERR_FILENO) == 1;
  const auto t0 = std::chrono::steady_clock::now();
  nlohmann::json rounds = nlohmann::json::array();
  std::string current = text;
  std::string result;
  for (int round = 0;; ++round) {
    const int64_t tokens = static_cast<int64_t>(tok.encode(current).size());
    if (tokens <= room) {
      auto out = runner.run(instruction(f, false), current);
      if (!out.ok()) return fail(out.status().Wrap(c));
      result = *out;
      break;
    }
    if (round >= 8) return fail(c + ": the partial summaries do not get shorter than the context");
    const std::vector<rag::Chunk> chunks = rag::chunk_text(tok, current, room, 0);
    nlohmann::json parts = nlohmann::json::array();
    std::string joined;
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (tty) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::fprintf(stderr, "\r\033[K[%s] round %d: chunk %zu / %zu | %.1f s", cmd, round + 1, i + 1, chunks.size(), s);
      }
      auto out = runner.run(instruction(f, f.task == Task::kSummarize), chunks[i].text);
      if (!out.ok()) return fail(out.status().Wrap(c));
      parts.push_back({{"text", chunks[i].text}, {"output", *out}});
      joined += (joined.empty() ? "" : f.task == Task::kSummarize ? "\n\n" : "\n") + *out;
    }
    if (tty) std::fprintf(stderr, "\r\033[K");
    rounds.push_back(parts);
    if (f.task != Task::kSummarize) {  // translations and rewrites are the chunks' outputs joined
      result = joined;
      break;
    }
    current = joined;
  }
  if (f.json) {
    std::printf("%s\n", nlohmann::json({{"output", result}, {"rounds", rounds}}).dump().c_str());
  } else {
    std::printf("%s\n", result.c_str());
  }
  return 0;
}

void add_common(CLI::App* c, TransformFlags& f) {
  c->add_option("-m,--model", f.model, "Language model with a chat template")->required();
  c->add_option("-p,--prompt", f.prompt, "The text");
  c->add_option("-f,--file", f.file, "A file holding the text");
  c->add_option("-n", f.n, "Most tokens generated per pass (default 256)");
  c->add_option("--ctx", f.ctx, "Context to run the model at (default: its own); longer texts go in chunks");
  c->add_option("--chat-template", f.chat_template, "chatml, llama2, llama3 or mistral (default: the model's)");
  c->add_flag("--json", f.json, "One JSON object: output, and each map round's chunks and their outputs");
  add_sampling_flags(c, f.s);
  add_dequantize_flag(c, f.dequantize);
  c->add_option("-t,--threads", f.threads, "Threads (default: all cores)");
}

}  // namespace

void register_transform(CLI::App& app, Commands& cmds) {
  struct Def {
    const char* name;
    const char* help;
    Task task;
  };
  for (const Def& d : {Def{"summarize", "Summarize a text (map-reduce over chunks when it is past the context)", Task::kSummarize},
                       Def{"translate", "Translate a text (--to LANG), chunk by chunk when it is long", Task::kTranslate},
                       Def{"rewrite", "Rewrite a text in a style (--style S), chunk by chunk when it is long", Task::kRewrite}}) {
    auto* c = app.add_subcommand(d.name, d.help);
    auto f = std::make_shared<TransformFlags>();
    f->task = d.task;
    f->s.temp = 0.0f;
    add_common(c, *f);
    if (d.task == Task::kTranslate) c->add_option("--to", f->to, "Target language (e.g. French)")->required();
    if (d.task == Task::kRewrite) c->add_option("--style", f->style, "Style (e.g. formal, plain, concise)")->required();
    const char* name = d.name;
    c->callback([f, name, &cmds] { cmds.run = [f, name] { return run_transform(*f, name); }; });
  }
}

}  // namespace longctx::cli
