// longctx command line: one binary, one subcommand per use. Only cli/ may exit().
#include <CLI/CLI.hpp>

#include <cstdio>
#include <string>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"

int main(int argc, char** argv) {
  longctx::ensure_blas_kernels(argc, argv);
  using namespace longctx::cli;
  CLI::App app{"longctx: train and run long-context transformer language models on the CPU"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "longctx 0.1.0");
  Commands cmds;
  register_tokenizer(app, cmds);
  register_train(app, cmds);
  register_generate(app, cmds);
  register_eval(app, cmds);
  register_info(app, cmds);
  register_chat(app, cmds);
  register_perplexity(app, cmds);
  register_bench(app, cmds);
  register_quantize(app, cmds);
  register_export(app, cmds);
  register_logits(app, cmds);
  register_tokenize(app, cmds);
  register_detokenize(app, cmds);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fflush(stdout);
    std::fprintf(stderr, "longctx: error: %s\n", e.what());
    return 2;
  }
  return cmds.run ? cmds.run() : 0;
}
