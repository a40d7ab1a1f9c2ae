// longctx generate -m MODEL -p "In the beginning" -n 200 --temp 0.8 --top-k 40 --top-p 0.95 --seed 1 [--ctx N]
//                  [--ubatch N] [--cache-type-k f16] [--cache-type-v q8_0] [--context-shift --keep N]
// MODEL: a longctx checkpoint or a pretrained GGUF of a supported architecture.
// Several prompts (-p given again, or --prompt-file with one per line) are answered in turn,
// each with the same sampling settings; the tokens they all start with (a system prompt, a
// document asked several questions) are computed once and each prompt goes on from a fork of
// that prefix's cache pages (infer::Session::keep_prefix).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/attribution.h"
#include "infer/session.h"
#include "io/atomic_file.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

// The prompts of a --prompt-file: one per non-empty line; "\n" in a line stands for a newline
// and "\\" for a backslash.
Expected<std::vector<std::string>> read_prompts(const std::string& path) {
  auto text = io::read_file(path);
  if (!text.ok()) return text.status().Wrap("--prompt-file");
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= text->size()) {
    size_t end = text->find('\n', at);
    if (end == std::string::npos) end = text->size();
    std::string line;
    for (size_t i = at; i < end; ++i) {
      const char c = (*text)[i];
      if (c == '\\' && i + 1 < end && ((*text)[i + 1] == 'n' || (*text)[i + 1] == '\\')) {
        line += (*text)[++i] == 'n' ? '\n' : '\\';
      } else if (!(c == '\r' && i + 1 == end)) {
        line += c;
      }
    }
    if (!line.empty()) out.push_back(std::move(line));
    at = end + 1;
  }
  if (out.empty()) return Status::Error("--prompt-file " + path + ": no prompts in it (one per line)");
  return out;
}

}  // namespace

void register_generate(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("generate", "Generate text from a prompt (streams tokens as they come)");
  struct Opts {
    std::string model, prompt_file;
    std::vector<std::string> prompts;
    int64_t n = 200;
    int threads = 0, ctx = 0;
    int64_t ubatch = 512;
    std::string cache_k = "f32", cache_v = "f32";
    bool json = false, dequantize = false, shift = false, attribution = false;
    LoraFlags lora;
    int64_t keep = 0;
    infer::SamplerOptions s;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("-m,--model", o->model, "Model: a longctx checkpoint or a pretrained GGUF (llama)")->required();
  c->add_option("--ctx", o->ctx, "Context length (default: the model's)");
  c->add_option("--ubatch", o->ubatch, "Prompt tokens per prefill pass (default 512)");
  c->add_option("-p,--prompt", o->prompts, "Prompt text (given again: several prompts, answered in turn)")
      ->allow_extra_args(false);
  c->add_option("--prompt-file", o->prompt_file,
                "Prompts, one per line (\\n for a newline); their shared prefix is computed once");
  c->add_option("-n,--n-predict", o->n, "Tokens to generate at most");
  add_sampling_flags(c, o->s);
  add_dequantize_flag(c, o->dequantize);
  add_lora_flags(c, o->lora);
  add_cache_type_flags(c, o->cache_k, o->cache_v);
  add_context_shift_flags(c, o->shift, o->keep);
  c->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
  c->add_flag("--json", o->json, "Print one JSON object with the text and timings instead of streaming");
  c->add_flag("--attribution", o->attribution,
              "After each answer, the prompt lines its attention went to (layers and heads summed; top 10)");
  c->callback([o, &cmds] {
    cmds.run = [o] {
      Status sv = o->s.validate();
      if (!sv.ok()) return fail(sv);
      ThreadPool::set_default_threads(o->threads);
      if (o->ctx < 0) return fail("--ctx must be >= 0");
      if (o->ubatch < 1) return fail("--ubatch must be >= 1");
      if (o->keep < 0) return fail("--keep must be >= 0");
      auto kt = kvcache::parse_cache_type(o->cache_k), vt = kvcache::parse_cache_type(o->cache_v);
      if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
      if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
      model::LoadOptions lo;
      lo.ctx = o->ctx;
      lo.keep_quantized = !o->dequantize;
      auto loaded = model::load_model(o->model, lo);
      if (!loaded.ok()) return fail(loaded.status());
      if (Status s = apply_lora_flags(o->lora, *loaded->model); !s.ok()) return fail(s);
      loaded->model->set_integer_prefill(true);  // prompts on the integer tiles, where the CPU has AMX
      std::vector<std::string> prompts = o->prompts;
      if (!o->prompt_file.empty()) {
        auto more = read_prompts(o->prompt_file);
        if (!more.ok()) return fail(more.status());
        prompts.insert(prompts.end(), more->begin(), more->end());
      }
      if (prompts.empty()) prompts.push_back("");
      infer::Session session(*loaded->model, loaded->tokenizer, ThreadPool::global());
      session.set_ubatch(o->ubatch);
      session.set_cache_types(*kt, *vt);
      session.set_context_shift(o->shift, o->keep);
      // The tokens every prompt starts with, computed once and kept aside.
      int64_t shared = 0;
      double shared_s = 0;
      if (prompts.size() > 1) {
        std::vector<int32_t> prefix = session.encode_prompt(prompts[0]);
        for (size_t i = 1; i < prompts.size(); ++i) {
          const std::vector<int32_t> t = session.encode_prompt(prompts[i]);
          size_t n = 0;
          while (n < std::min(prefix.size(), t.size()) && prefix[n] == t[n]) ++n;
          prefix.resize(n);
        }
        if (!prefix.empty()) {
          infer::GenerateStats ps;
          const Status st = session.keep_prefix(prefix, &ps);
          if (!st.ok()) return fail(st);
          shared = static_cast<int64_t>(prefix.size());
          shared_s = ps.prefill_s;
        }
      }
      nlohmann::json results = nlohmann::json::array();
      for (size_t pi = 0; pi < prompts.size(); ++pi) {
        const std::string& prompt = prompts[pi];
        std::string text;
        if (!o->json) {
          if (pi > 0) std::fputc('\n', stdout);
          std::fputs(prompt.c_str(), stdout);
          std::fflush(stdout);
        }
        session.set_attribution(o->attribution);
        auto st = session.generate(prompt, o->n, o->s, [&](const std::string& piece) {
          if (o->json) {
            text += piece;
          } else {
            std::fwrite(piece.data(), 1, piece.size(), stdout);
            std::fflush(stdout);
          }
        });
        if (!st.ok()) {
          if (!o->json) std::fputc('\n', stdout);
          return fail(st.status());
        }
        const double tps = st->decode_s > 0 ? st->generated / st->decode_s : 0;
        // Attribution: each prompt line's share of the answer's attention.
        nlohmann::json lines = nlohmann::json::array();
        if (o->attribution)
          for (const infer::LineShare& l :
               infer::top_line_shares(loaded->tokenizer, session.encode_prompt(prompt), session.attribution(), 10))
            lines.push_back({{"line", l.line}, {"share", l.share}, {"text", l.text}});
        if (o->json) {
          results.push_back({{"prompt", prompt},
                             {"text", text},
                             {"prompt_tokens", st->prompt_tokens},
                             {"reused_tokens", st->reused_tokens},
                             {"generated_tokens", st->generated},
                             {"stopped_at_eos", st->stopped_at_eos},
                             {"context_shifts", session.shifts()},
                             {"prefill_s", st->prefill_s},
                             {"decode_tokens_per_s", tps}});
          if (o->attribution) results.back()["attribution"] = lines;
        } else {
          std::printf("\n");
          std::fflush(stdout);
          std::fprintf(stderr, "[%lld prompt tokens (%lld reused), %lld generated, %.1f tokens/s]\n",
                       (long long)st->prompt_tokens, (long long)st->reused_tokens, (long long)st->generated, tps);
          if (o->attribution) {
            std::fprintf(stderr, "[attention of the answer by prompt line, layers and heads summed; top %zu]\n", lines.size());
            for (const auto& l : lines) {
              std::string t = l["text"].get<std::string>().substr(0, 70);
              std::fprintf(stderr, "  line %4lld %5.1f%%  %s\n", static_cast<long long>(l["line"].get<int64_t>()),
                           100 * l["share"].get<double>(), t.c_str());
            }
          }
        }
      }
      if (o->json) {
        nlohmann::json j = results[0];
        if (prompts.size() > 1) j = {{"shared_prefix_tokens", shared}, {"shared_prefix_s", shared_s}, {"results", results}};
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else if (prompts.size() > 1) {
        std::fprintf(stderr, "[%zu prompts; their shared prefix of %lld tokens computed once, in %.2f s]\n",
                     prompts.size(), (long long)shared, shared_s);
      }
      return 0;
    };
  });
}

}  // namespace longctx::cli
