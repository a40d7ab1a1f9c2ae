// longctx chat -m MODEL [--system TEXT] [--chat-template NAME] [-n 512] [generation flags]
// Interactive chat with a model that has a chat template: one user message per line, the answer
// streams back. /reset starts a new conversation, Ctrl-D (end of input) quits. With standard
// input piped, each line is one message and each answer is printed followed by a newline, so
// a conversation can be scripted. The KV cache keeps the conversation between turns.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/attribution.h"
#include "infer/chat_template.h"
#include "infer/session.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct ChatFlags {
  std::string model, system, chat_template;
  int64_t n = 512;
  int threads = 0, ctx = 0;
  int64_t ubatch = 512;
  std::string cache_k = "f32", cache_v = "f32";
  bool dequantize = false, shift = false, attribution = false;
  LoraFlags lora;
  int64_t keep = 0;
  infer::SamplerOptions s;
};

int run_chat(const ChatFlags& f) {
  Status sv = f.s.validate();
  if (!sv.ok()) return fail(sv);
  if (f.n < 1) return fail("-n must be >= 1");
  if (f.ctx < 0) return fail("--ctx must be >= 0");
  if (f.ubatch < 1) return fail("--ubatch must be >= 1");
  if (f.keep < 0) return fail("--keep must be >= 0");
  auto kt = kvcache::parse_cache_type(f.cache_k), vt = kvcache::parse_cache_type(f.cache_v);
  if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
  if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
  ThreadPool::set_default_threads(f.threads);
  model::LoadOptions lo;
  lo.ctx = f.ctx;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  if (Status s = apply_lora_flags(f.lora, *loaded->model); !s.ok()) return fail(s);
  loaded->model->set_integer_prefill(true);  // prompts on the integer tiles, where the CPU has AMX
  const tokenizer::BpeTokenizer& tok = loaded->tokenizer;
  const Expected<infer::ChatTemplate> tmpl = infer::ChatTemplate::choose(tok.chat_template(), f.chat_template);
  if (!tmpl.ok()) return fail(tmpl.status().Wrap("model '" + f.model + "'"));
  // Generation also stops at the token that ends an assistant turn, when it is one token.
  std::vector<int32_t> stop;
  const std::vector<int32_t> eot = tok.encode_special(tmpl->end_of_turn());
  if (eot.size() == 1) stop.push_back(eot[0]);

  infer::Session session(*loaded->model, tok, ThreadPool::global());
  session.set_ubatch(f.ubatch);
  session.set_cache_types(*kt, *vt);
  session.set_context_shift(f.shift, f.keep);
  infer::Sampler sampler(f.s);
  std::vector<infer::ChatMessage> history;
  auto start = [&] {
    history.clear();
    if (!f.system.empty()) history.push_back({"system", f.system});
  };
  start();
  const bool interactive = isatty(STDIN_FILENO) == 1;
  if (interactive)
    std::printf("chat with %s (%s template; /reset starts over, Ctrl-D quits)\n", f.model.c_str(), tmpl->name());
  std::string line;
  for (;;) {
    if (interactive) {
      std::printf("> ");
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, line)) break;
    if (line == "/reset") {
      start();
      session.reset();
      if (interactive) std::printf("(new conversation)\n");
      continue;
    }
    if (line.empty()) continue;
    history.push_back({"user", line});
    std::vector<int32_t> prompt = tok.encode_special(tmpl->render(history, true));
    // With context shift the oldest turns after the system message make room for a new one.
    const size_t first = f.system.empty() ? 0 : 1;
    while (f.shift && static_cast<int64_t>(prompt.size()) >= loaded->model->config().ctx &&
           history.size() > first + 1) {
      history.erase(history.begin() + first);
      prompt = tok.encode_special(tmpl->render(history, true));
    }
    infer::GenerateStats st;
    session.set_attribution(f.attribution);
    Status ps = session.set_tokens(prompt, &st);
    if (!ps.ok()) return fail(ps.message() + " (the conversation no longer fits; /reset or a larger --ctx)");
    std::string answer;
    Status gs = session.continue_tokens(f.n, sampler, stop, [&](int32_t id) {
      const std::string& piece = tok.token_bytes(id);
      answer += piece;
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }, &st);
    std::printf("\n");
    if (!gs.ok()) return fail(gs);
    std::fflush(stdout);
    if (f.attribution) {
      std::fprintf(stderr, "[attention of the answer by conversation line, layers and heads summed]\n");
      for (const infer::LineShare& l : infer::top_line_shares(tok, prompt, session.attribution(), 5))
        std::fprintf(stderr, "  line %4lld %5.1f%%  %s\n", static_cast<long long>(l.line), 100 * l.share,
                     l.text.substr(0, 70).c_str());
    }
    history.push_back({"assistant", answer});
  }
  if (interactive) std::printf("\n");
  return 0;
}

}  // namespace

void register_chat(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("chat", "Chat with a model (one message per line; /reset; Ctrl-D quits)");
  auto f = std::make_shared<ChatFlags>();
  c->add_option("-m,--model", f->model, "Model (GGUF)")->required();
  c->add_option("--system", f->system, "System message");
  c->add_option("--chat-template", f->chat_template, "chatml, llama2, llama3 or mistral (default: from the model)");
  c->add_option("-n,--n-predict", f->n, "Tokens per answer at most");
  c->add_option("--ctx", f->ctx, "Context length (default: the model's)");
  c->add_option("--ubatch", f->ubatch, "Prompt tokens per prefill pass (default 512)");
  add_sampling_flags(c, f->s);
  add_dequantize_flag(c, f->dequantize);
  add_lora_flags(c, f->lora);
  add_context_shift_flags(c, f->shift, f->keep);
  add_cache_type_flags(c, f->cache_k, f->cache_v);
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->add_flag("--attribution", f->attribution,
              "After each answer, the conversation lines its attention went to (layers and heads summed; top 5)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_chat(*f); }; });
}

}  // namespace longctx::cli
