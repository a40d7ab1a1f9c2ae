// longctx generate -m MODEL -p "In the beginning" -n 200 --temp 0.8 --top-k 40 --top-p 0.95 --seed 1 [--ctx N]
//                  [--ubatch N] [--cache-type-k f16] [--cache-type-v q8_0] [--context-shift --keep N]
// MODEL: a longctx checkpoint or a pretrained GGUF of a supported architecture.
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/session.h"
#include "model/pretrained.h"

namespace longctx::cli {

void register_generate(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("generate", "Generate text from a prompt (streams tokens as they come)");
  struct Opts {
    std::string model, prompt;
    int64_t n = 200;
    int threads = 0, ctx = 0;
    int64_t ubatch = 512;
    std::string cache_k = "f32", cache_v = "f32";
    bool json = false, dequantize = false, shift = false;
    int64_t keep = 0;
    infer::SamplerOptions s;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("-m,--model", o->model, "Model: a longctx checkpoint or a pretrained GGUF (llama)")->required();
  c->add_option("--ctx", o->ctx, "Context length (default: the model's)");
  c->add_option("--ubatch", o->ubatch, "Prompt tokens per prefill pass (default 512)");
  c->add_option("-p,--prompt", o->prompt, "Prompt text");
  c->add_option("-n,--n-predict", o->n, "Tokens to generate at most");
  add_sampling_flags(c, o->s);
  add_dequantize_flag(c, o->dequantize);
  add_cache_type_flags(c, o->cache_k, o->cache_v);
  add_context_shift_flags(c, o->shift, o->keep);
  c->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
  c->add_flag("--json", o->json, "Print one JSON object with the text and timings instead of streaming");
  c->callback([o, &cmds] {
    cmds.run = [o] {
      Status sv = o->s.validate();
      if (!sv.ok()) return fail(sv);
      ThreadPool::set_default_threads(o->threads);
      if (o->ctx < 0) return fail("--ctx must be >= 0");
      if (o->ubatch < 1) return fail("--ubatch must be >= 1");
      if (o->keep < 0) return fail("--keep must be >= 0");
      auto kt = model::parse_cache_type(o->cache_k), vt = model::parse_cache_type(o->cache_v);
      if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
      if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
      model::LoadOptions lo;
      lo.ctx = o->ctx;
      lo.keep_quantized = !o->dequantize;
      auto loaded = model::load_model(o->model, lo);
      if (!loaded.ok()) return fail(loaded.status());
      infer::Session session(*loaded->model, loaded->tokenizer, ThreadPool::global());
      session.set_ubatch(o->ubatch);
      session.set_cache_types(*kt, *vt);
      session.set_context_shift(o->shift, o->keep);
      std::string text;
      if (!o->json) {
        std::fputs(o->prompt.c_str(), stdout);
        std::fflush(stdout);
      }
      auto st = session.generate(o->prompt, o->n, o->s, [&](const std::string& piece) {
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
      if (o->json) {
        nlohmann::json j = {{"prompt", o->prompt},
                            {"text", text},
                            {"prompt_tokens", st->prompt_tokens},
                            {"generated_tokens", st->generated},
                            {"stopped_at_eos", st->stopped_at_eos},
                            {"context_shifts", session.shifts()},
                            {"prefill_s", st->prefill_s},
                            {"decode_tokens_per_s", tps}};
        std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      } else {
        std::printf("\n");
        std::fprintf(stderr, "[%lld prompt tokens, %lld generated, %.1f tokens/s]\n", (long long)st->prompt_tokens,
                     (long long)st->generated, tps);
      }
      return 0;
    };
  });
}

}  // namespace longctx::cli
