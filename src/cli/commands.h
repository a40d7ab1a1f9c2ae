// Each subcommand registers its flags on the CLI11 app and sets `run` when it is chosen.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>

#include "cli/common.h"

namespace longctx::cli {

struct Commands {
  std::function<int()> run;
};

void register_tokenizer(CLI::App& app, Commands& cmds);
void register_train(CLI::App& app, Commands& cmds);
void register_generate(CLI::App& app, Commands& cmds);
void register_bench(CLI::App& app, Commands& cmds);
void register_eval(CLI::App& app, Commands& cmds);
void register_quantize(CLI::App& app, Commands& cmds);
void register_info(CLI::App& app, Commands& cmds);
void register_chat(CLI::App& app, Commands& cmds);
void register_bench_attention(CLI::App& bench, Commands& cmds);  // under `bench`
void register_bench_routing(CLI::App& bench, Commands& cmds);    // under `bench`
void register_perplexity(CLI::App& app, Commands& cmds);
void register_export(CLI::App& app, Commands& cmds);
void register_logits(CLI::App& app, Commands& cmds);
void register_tokenize(CLI::App& app, Commands& cmds);
void register_detokenize(CLI::App& app, Commands& cmds);
void register_serve(CLI::App& app, Commands& cmds);
void register_expand(CLI::App& app, Commands& cmds);
void register_merge_lora(CLI::App& app, Commands& cmds);
void register_embed(CLI::App& app, Commands& cmds);
void register_index(CLI::App& app, Commands& cmds);
void register_ask(CLI::App& app, Commands& cmds);
void register_classify(CLI::App& app, Commands& cmds);  // classify, sentiment
void register_transform(CLI::App& app, Commands& cmds);  // summarize, translate, rewrite

// `longctx bench -m MODEL`: llama-bench-style prefill / generation speed (cmd_bench_model.cc).
struct BenchModelFlags {
  std::string model, random_model, depths = "0", parallel, cache_k = "f32", cache_v = "f32";
  int64_t prompt = 512, gen = 128, ctx = 0, ubatch = 512;
  int reps = 5, threads = 0;
  bool json = false, dequantize = false, no_repack = false, exact_prefill = false;
  LoraFlags lora;
};
int run_bench_model(const BenchModelFlags& f);

}  // namespace longctx::cli
