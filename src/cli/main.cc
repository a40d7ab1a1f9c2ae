// longctx command line: one binary, one subcommand per use. Only cli/ may exit().
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

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
  register_serve(app, cmds);
  register_expand(app, cmds);
  register_merge_lora(app, cmds);
  register_embed(app, cmds);
  register_index(app, cmds);
  register_ask(app, cmds);
  register_classify(app, cmds);
  register_transform(app, cmds);
  // llama.cpp's two-letter short flag `-np N` (CLI11 takes one-letter short names only).
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args)
    if (a == "-np") a = "--parallel";
  std::reverse(args.begin(), args.end());  // CLI11 takes the arguments in reverse order
  app.name("longctx");
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fflush(stdout);
    std::fprintf(stderr, "longctx: error: %s\n", e.what());
    return 2;
  }
  return cmds.run ? cmds.run() : 0;
}
