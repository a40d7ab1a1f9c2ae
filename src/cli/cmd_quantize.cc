// longctx quantize IN OUT TYPE [-t N]
// Converts every weight matrix of a GGUF (a longctx checkpoint or a llama.cpp model) to TYPE
// (f32, f16, bf16, q8_0, q4_0, q4_1); 1-D tensors become F32. Rules: model/quantize_gguf.h.
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "model/quantize_gguf.h"
#include "quant/formats.h"

namespace longctx::cli {

void register_quantize(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("quantize", "Convert a GGUF model's weight matrices to another type");
  struct Opts {
    std::string in, out, type;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("IN", o->in, "Input GGUF (longctx checkpoint or llama.cpp model)")->required();
  c->add_option("OUT", o->out, "Output GGUF (written atomically)")->required();
  c->add_option("TYPE", o->type, "f32, f16, bf16, q8_0, q4_0 or q4_1")->required();
  c->add_option("-t,--threads", o->threads, "Threads (default: all cores)");
  c->callback([o, &cmds] {
    cmds.run = [o] {
      Expected<uint32_t> type = model::parse_output_type(o->type);
      if (!type.ok()) return fail(type.status().Wrap("quantize"));
      ThreadPool::set_default_threads(o->threads);
      const bool tty = stdout_is_tty();
      bool progress_shown = false;
      model::QuantizeGgufOptions opt;
      opt.warn = [&](const std::string& m) {
        if (progress_shown) std::printf("\n");  // keep the warning off the progress line
        progress_shown = false;
        std::fflush(stdout);
        std::fprintf(stderr, "longctx: warning: quantize: %s\n", m.c_str());
      };
      if (tty) {
        opt.progress = [&](size_t i, size_t n, const std::string& name) {
          std::printf("\r\033[Kquantize: tensor %zu/%zu %s", i + 1, n, name.c_str());
          std::fflush(stdout);
          progress_shown = true;
        };
      }
      const auto t0 = std::chrono::steady_clock::now();
      auto stats = model::quantize_gguf(o->in, o->out, *type, opt);
      if (progress_shown) std::printf("\r\033[K");
      if (!stats.ok()) return fail(stats.status());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double mib = 1024.0 * 1024.0;
      std::printf("quantize: %s -> %s: %zu tensors, %zu as %s", o->in.c_str(), o->out.c_str(), stats->n_tensors,
                  stats->n_as_type, quant::type_name(*type).c_str());
      if (stats->n_f32) std::printf(", %zu 1-D as F32", stats->n_f32);
      if (stats->n_f16_fallback) std::printf(", %zu kept F16", stats->n_f16_fallback);
      if (stats->n_integer) std::printf(", %zu integer copied", stats->n_integer);
      std::printf("; tensor data %.1f MiB -> %.1f MiB in %.1f s\n", stats->in_bytes / mib, stats->out_bytes / mib, s);
      return 0;
    };
  });
}

}  // namespace longctx::cli
