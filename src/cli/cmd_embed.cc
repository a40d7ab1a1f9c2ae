// longctx embed -m MODEL (-p TEXT ... | -f FILE) [--json] [--pooling mean|cls|last] [--normalize]
// Sentence embeddings from an encoder (BERT: all-MiniLM-L6-v2 as Hugging Face ships it, or a
// llama.cpp bert GGUF) or any model with pooling. -f FILE: one text per line. Default output: one
// line per text, its values separated by spaces; --json: the OpenAI embeddings response.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "model/embedding.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct EmbedFlags {
  std::vector<std::string> prompts;
  std::string model, file, pooling, precision;
  bool json = false, normalize = false, no_normalize = false, timings = false;
  int64_t max_tokens = 0, batch = 32, batch_tokens = 8192;
  int threads = 0;
};

int run_embed(const EmbedFlags& f) {
  if (f.prompts.empty() == f.file.empty()) return fail("embed: give texts with -p TEXT (repeatable) or -f FILE, not both");
  if (f.normalize && f.no_normalize) return fail("embed: --normalize and --no-normalize contradict each other");
  if (f.max_tokens < 0) return fail("embed: --max-tokens must be >= 0");
  if (f.batch_tokens < 1) return fail("embed: --batch-tokens must be >= 1");
  if (f.batch < 1) return fail("embed: --batch must be >= 1");
  std::vector<std::string> texts = f.prompts;
  if (!f.file.empty()) {
    std::ifstream in(f.file, std::ios::binary);
    if (!in) return fail("embed: cannot read '" + f.file + "'");
    std::string line;
    int64_t n = 0;
    while (std::getline(in, line)) {
      ++n;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.find_first_not_of(" \t") == std::string::npos)
        return fail("embed: '" + f.file + "' line " + std::to_string(n) + " is empty (one text per line)");
      texts.push_back(line);
    }
    if (texts.empty()) return fail("embed: '" + f.file + "' holds no text");
  }
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  model::LoadOptions lo;
  // A model without pooling of its own (a decoder) embeds with --pooling (last: llama.cpp's
  // choice for decoders), through its final norm.
  lo.use = f.pooling.empty() ? model::LoadOptions::Use::kEmbed : model::LoadOptions::Use::kAny;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  // Quantized matrices (Q8_0 / Q4_0 / Q4_1) on a CPU with AMX: rows through the integer tiles.
  m.set_integer_prefill(true);
  if (Status st = apply_precision(f.precision, m); !st.ok()) return fail(st.Wrap("embed"));
  model::EmbedOptions opt = model::default_embed_options(m.config());
  if (!f.pooling.empty()) {
    auto p = model::parse_pooling(f.pooling);
    if (!p.ok() || *p == model::Pooling::kNone) return fail("embed: --pooling must be mean, cls or last");
    opt.pooling = *p;
  }
  if (f.normalize) opt.normalize = true;
  if (f.no_normalize) opt.normalize = false;
  opt.max_tokens = f.max_tokens > 0 ? std::min<int64_t>(f.max_tokens, m.config().ctx) : m.config().ctx;
  opt.batch_tokens = f.batch_tokens;
  opt.batch = f.batch;
  std::vector<std::vector<int32_t>> ids;
  int64_t total_tokens = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto t = model::embed_tokens(loaded->tokenizer, texts[i], opt.max_tokens);
    if (!t.ok()) return fail(t.status().Wrap("embed: text " + std::to_string(i + 1)));
    total_tokens += static_cast<int64_t>(t->size());
    ids.push_back(std::move(*t));
  }
  const bool tty = isatty(STDERR_FILENO) == 1;
  const auto t0 = std::chrono::steady_clock::now();
  Arena arena;
  std::vector<float> vec = model::embed_batch(m, pool, arena, ids, opt, [&](int64_t done, int64_t total) {
    if (!tty || total < 2) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "\r\033[K[embed] %lld / %lld texts | %s texts/s | ETA %s", static_cast<long long>(done),
                 static_cast<long long>(total), format_rate(done / std::max(s, 1e-9)).c_str(),
                 format_duration(s / done * (total - done)).c_str());
  });
  if (tty && texts.size() > 1) std::fprintf(stderr, "\r\033[K");
  if (f.timings) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::fprintf(stderr, "%s\n",
                 nlohmann::json({{"texts", texts.size()}, {"tokens", total_tokens}, {"seconds", s},
                                 {"texts_per_s", texts.size() / s}, {"tokens_per_s", total_tokens / s}})
                     .dump()
                     .c_str());
  }
  const int64_t D = m.config().model_dim;
  if (f.json) {
    nlohmann::json data = nlohmann::json::array();
    for (size_t i = 0; i < texts.size(); ++i)
      data.push_back({{"object", "embedding"},
                      {"index", i},
                      {"embedding", std::vector<float>(vec.begin() + i * D, vec.begin() + (i + 1) * D)}});
    nlohmann::json out = {{"object", "list"},
                          {"data", std::move(data)},
                          {"model", f.model},
                          {"usage", {{"prompt_tokens", total_tokens}, {"total_tokens", total_tokens}}}};
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  for (size_t i = 0; i < texts.size(); ++i) {
    std::string line;
    char buf[32];
    for (int64_t d = 0; d < D; ++d) {
      std::snprintf(buf, sizeof buf, d ? " %.9g" : "%.9g", vec[i * D + d]);
      line += buf;
    }
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

void register_embed(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("embed", "Embed texts with an encoder (BERT / sentence-transformers) or a model with pooling");
  auto f = std::make_shared<EmbedFlags>();
  c->add_option("-m,--model", f->model, "Model: a Hugging Face BERT directory (config.json, model.safetensors, "
                                        "tokenizer.json) or a bert GGUF")->required();
  c->add_option("-p,--prompt", f->prompts, "A text to embed (repeatable)");
  c->add_option("-f,--file", f->file, "A file of texts, one per line");
  add_precision_flag(c, f->precision, "fp32");
  c->add_flag("--json", f->json, "Print the OpenAI embeddings response (data[i].embedding, usage)");
  c->add_option("--pooling", f->pooling, "mean, cls or last (default: the model's own)");
  c->add_flag("--normalize", f->normalize, "L2-normalise every vector (default: as the model says)");
  c->add_flag("--no-normalize", f->no_normalize, "Do not normalise");
  c->add_option("--max-tokens", f->max_tokens, "Cut texts to this many tokens, [CLS] and [SEP] included (default: the context)");
  c->add_option("--batch", f->batch, "Texts of one length per pass, at most (default 32)");
  c->add_option("--batch-tokens", f->batch_tokens, "Tokens per pass, at most (default 8192)");
  c->add_flag("--timings", f->timings, "Print one JSON line to stderr: texts, tokens, seconds of the forward passes");
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_embed(*f); }; });
}

}  // namespace longctx::cli
