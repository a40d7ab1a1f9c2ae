// longctx index build --embed-model E -o INDEX PATH... [--chunk-tokens 256] [--overlap 32]
// longctx index search INDEX "query" [-k 10] [--json] [--embed-model E]
// A retrieval index over text, Markdown and source files (rag/index.h): chunks of about N tokens
// with overlap, each with its file, line range and byte range; building over an existing index
// re-embeds only the files whose bytes changed. Search is exact (cosine over every chunk).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "model/embedding.h"
#include "model/pretrained.h"
#include "rag/index.h"

namespace longctx::cli {
namespace {

struct IndexFlags {
  std::string embed_model, out, index, query;
  std::vector<std::string> paths;
  int64_t chunk_tokens = 256, overlap = 32, k = 10, batch = 32;
  bool json = false;
  int threads = 0;
};

Expected<model::LoadedModel> load_embedder(const std::string& path) {
  model::LoadOptions lo;
  lo.use = model::LoadOptions::Use::kEmbed;
  auto loaded = model::load_model(path, lo);
  // As `embed`: quantized matrices through the integer tiles where the CPU has AMX.
  if (loaded.ok()) loaded->model->set_integer_prefill(true);
  return loaded;
}

int run_build(const IndexFlags& f) {
  if (f.chunk_tokens < 8 || f.chunk_tokens > 8192) return fail("index build: --chunk-tokens must be in [8, 8192]");
  if (f.overlap < 0 || f.overlap >= f.chunk_tokens) return fail("index build: --overlap must be in [0, --chunk-tokens)");
  if (f.paths.empty()) return fail("index build: give the files or directories to index");
  ThreadPool::set_default_threads(f.threads);
  auto sources = rag::collect_files(f.paths);
  if (!sources.ok()) return fail(sources.status().Wrap("index build"));
  if (sources->empty()) return fail("index build: no text, Markdown or source files under the paths given");
  auto loaded = load_embedder(f.embed_model);
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  const int64_t room = m.config().ctx - 2;
  if (f.chunk_tokens > room)
    return fail("index build: --chunk-tokens " + std::to_string(f.chunk_tokens) + " is past the model's context (" +
                std::to_string(room) + " tokens besides [CLS] and [SEP])");
  std::optional<rag::Index> previous;
  std::error_code ec;
  if (std::filesystem::exists(f.out, ec)) {
    auto old = rag::load_index(f.out);
    if (!old.ok()) return fail(old.status().Wrap("index build: -o names a file that is not an index (not overwritten)"));
    previous = std::move(*old);
    if (!rag::same_model(*previous, rag::probe_vector(m, loaded->tokenizer)))
      return fail("index build: '" + f.out + "' was built with another embedding model ('" + previous->model +
                  "'); give a new -o to build one with '" + f.embed_model + "'");
  }
  rag::BuildOptions opt;
  opt.chunk_tokens = f.chunk_tokens;
  opt.overlap = f.overlap;
  opt.batch = f.batch;
  rag::BuildStats st;
  const bool tty = isatty(STDERR_FILENO) == 1;
  const auto t0 = std::chrono::steady_clock::now();
  auto built = rag::build_index(m, loaded->tokenizer, f.embed_model, *sources, previous ? &*previous : nullptr, opt, &st,
                                [&](int64_t done, int64_t total) {
                                  if (!tty) return;
                                  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                                  std::fprintf(stderr, "\r\033[K[index] chunk %lld / %lld | %s chunks/s | ETA %s",
                                               static_cast<long long>(done), static_cast<long long>(total),
                                               format_rate(done / std::max(s, 1e-9)).c_str(),
                                               format_duration(s / std::max<int64_t>(done, 1) * (total - done)).c_str());
                                });
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!built.ok()) return fail(built.status().Wrap("index build"));
  if (Status s = rag::save_index(f.out, *built); !s.ok()) return fail(s.Wrap("index build"));
  const nlohmann::json summary = {{"index", f.out},
                                  {"files", built->files.size()},
                                  {"chunks", built->chunks.size()},
                                  {"files_embedded", st.files_embedded},
                                  {"files_reused", st.files_reused},
                                  {"files_skipped", st.files_skipped},
                                  {"chunks_embedded", st.chunks_embedded},
                                  {"chunks_reused", st.chunks_reused},
                                  {"tokens_embedded", st.tokens_embedded},
                                  {"seconds", st.seconds},
                                  {"chunks_per_s", st.chunks_embedded / std::max(st.seconds, 1e-9)}};
  if (f.json) {
    std::printf("%s\n", summary.dump().c_str());
  } else {
    std::printf("index: %s: %zu files, %zu chunks (%lld files embedded, %lld unchanged, %lld skipped; "
                "%lld chunks, %lld tokens embedded in %.1f s)\n",
                f.out.c_str(), built->files.size(), built->chunks.size(), static_cast<long long>(st.files_embedded),
                static_cast<long long>(st.files_reused), static_cast<long long>(st.files_skipped),
                static_cast<long long>(st.chunks_embedded), static_cast<long long>(st.tokens_embedded), st.seconds);
  }
  return 0;
}

int run_search(const IndexFlags& f) {
  if (f.k < 1) return fail("index search: -k must be >= 1");
  if (f.query.find_first_not_of(" \t\r\n") == std::string::npos) return fail("index search: the query is empty");
  ThreadPool::set_default_threads(f.threads);
  auto index = rag::load_index(f.index);
  if (!index.ok()) return fail(index.status());
  const std::string model_path = f.embed_model.empty() ? index->model : f.embed_model;
  auto loaded = load_embedder(model_path);
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  if (!rag::same_model(*index, rag::probe_vector(m, loaded->tokenizer)))
    return fail("index search: '" + f.index + "' was built with another embedding model ('" + index->model +
                "'), not '" + model_path + "'");
  auto ids = model::embed_tokens(loaded->tokenizer, f.query, m.config().ctx);
  if (!ids.ok()) return fail(ids.status().Wrap("index search: the query"));
  model::EmbedOptions eo = model::default_embed_options(m.config());
  eo.normalize = true;
  Arena arena;
  const std::vector<float> q = model::embed_batch(m, ThreadPool::global(), arena, {*ids}, eo);
  const std::vector<rag::Hit> hits = rag::search_exact(*index, q.data(), f.k);
  if (f.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const rag::Hit& h : hits) {
      const rag::Chunk& c = index->chunks[h.chunk];
      out.push_back({{"chunk", h.chunk},
                     {"score", h.score},
                     {"file", index->files[c.file].path},
                     {"line_begin", c.line_begin},
                     {"line_end", c.line_end},
                     {"byte_begin", c.byte_begin},
                     {"byte_end", c.byte_end},
                     {"text", c.text}});
    }
    std::printf("%s\n", nlohmann::json({{"query", f.query}, {"hits", out}}).dump().c_str());
    return 0;
  }
  for (size_t i = 0; i < hits.size(); ++i) {
    const rag::Chunk& c = index->chunks[hits[i].chunk];
    std::string preview = c.text.substr(0, 160);
    for (char& ch : preview)
      if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
    std::printf("%2zu. %.4f  %s:%lld-%lld  %s%s\n", i + 1, hits[i].score, index->files[c.file].path.c_str(),
                static_cast<long long>(c.line_begin), static_cast<long long>(c.line_end), preview.c_str(),
                c.text.size() > 160 ? "..." : "");
  }
  return 0;
}

}  // namespace

void register_index(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("index", "Build and search a retrieval index of text, Markdown and source files");
  c->require_subcommand(1);
  auto f = std::make_shared<IndexFlags>();
  auto* b = c->add_subcommand("build", "Embed files into an index (re-embeds only files that changed)");
  b->add_option("--embed-model", f->embed_model, "Embedding model (an encoder: e.g. models/all-MiniLM-L6-v2)")->required();
  b->add_option("-o,--out", f->out, "Index file (GGUF, written atomically; an existing one is updated)")->required();
  b->add_option("PATHS", f->paths, "Files and directories (searched recursively)")->required();
  b->add_option("--chunk-tokens", f->chunk_tokens, "Tokens per chunk, at most (default 256)");
  b->add_option("--overlap", f->overlap, "Tokens consecutive chunks share (default 32)");
  b->add_option("--batch", f->batch, "Chunks per pass (default 32)");
  b->add_flag("--json", f->json, "Print the summary as JSON");
  b->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  b->callback([f, &cmds] { cmds.run = [f] { return run_build(*f); }; });
  auto* s = c->add_subcommand("search", "The chunks nearest a query (exact cosine search)");
  s->add_option("INDEX", f->index, "Index file")->required();
  s->add_option("QUERY", f->query, "Query text")->required();
  s->add_option("-k", f->k, "Hits (default 10)");
  s->add_option("--embed-model", f->embed_model, "Embedding model (default: the one the index names)");
  s->add_flag("--json", f->json, "One JSON object: the hits with file, lines, bytes, score and text");
  s->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  s->callback([f, &cmds] { cmds.run = [f] { return run_search(*f); }; });
}

}  // namespace longctx::cli
