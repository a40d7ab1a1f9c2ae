// longctx index build --embed-model E -o INDEX PATH... [--chunk-tokens 256] [--overlap 32] [--ann [--ef-search 64]]
// longctx index search INDEX "query" [-k 10] [--json] [--embed-model E] [--approx [--ef-search N]]
// A retrieval index over text, Markdown and source files (rag/index.h): chunks of about N tokens
// with overlap, each with its file, line range and byte range; building over an existing index
// re-embeds only the files whose bytes changed. Search is exact (cosine over every chunk) unless
// --approx: then FAISS's HNSW graph stored by `build --ann` (rag/ann.h), rebuilt from all the
// vectors whenever the index is rebuilt (an index that has one keeps one).
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
#include "rag/ann.h"
#include "rag/index.h"

namespace longctx::cli {
namespace {

struct IndexFlags {
  std::string embed_model, out, index, query;
  std::vector<std::string> paths;
  int64_t chunk_tokens = 256, overlap = 32, k = 10, batch = 32;
  bool json = false, ann = false, approx = false;
  int64_t ef_search = 0;  // 0: the default (build: 64; search: the stored one)
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
  if (f.ann && !rag::ann_available()) return fail("index build --ann: longctx was built without FAISS (install libfaiss-dev and rebuild)");
  if (f.ef_search < 0 || f.ef_search > 100000) return fail("index build: --ef-search must be in [1, 100000]");
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
  // The approximate index, from all the vectors (the chunks may have changed): asked for, or the
  // existing index had one.
  double ann_seconds = 0;
  const bool want_ann = f.ann || (previous && !previous->ann.blob.empty());
  if (want_ann && !rag::ann_available()) {
    std::fprintf(stderr, "warning: index build: built without FAISS: the approximate index is dropped\n");
  } else if (want_ann) {
    rag::AnnOptions ao;
    if (f.ef_search > 0) ao.ef_search = f.ef_search;
    else if (previous && previous->ann.ef_search > 0) ao.ef_search = previous->ann.ef_search;
    const auto a0 = std::chrono::steady_clock::now();
    if (Status s = rag::build_ann(*built, ao); !s.ok()) return fail(s.Wrap("index build"));
    ann_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - a0).count();
  }
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
                                  {"ann", !built->ann.blob.empty()},
                                  {"ann_seconds", ann_seconds},
                                  {"chunks_per_s", st.chunks_embedded / std::max(st.seconds, 1e-9)}};
  if (f.json) {
    std::printf("%s\n", summary.dump().c_str());
  } else {
    std::printf("index: %s: %zu files, %zu chunks (%lld files embedded, %lld unchanged, %lld skipped; "
                "%lld chunks, %lld tokens embedded in %.1f s)\n",
                f.out.c_str(), built->files.size(), built->chunks.size(), static_cast<long long>(st.files_embedded),
                static_cast<long long>(st.files_reused), static_cast<long long>(st.files_skipped),
                static_cast<long long>(st.chunks_embedded), static_cast<long long>(st.tokens_embedded), st.seconds);
    if (!built->ann.blob.empty())
      std::printf("index: approximate index (HNSW, M=%lld, efSearch %lld) built in %.2f s\n",
                  static_cast<long long>(built->ann.m), static_cast<long long>(built->ann.ef_search), ann_seconds);
  }
  return 0;
}

int run_search(const IndexFlags& f) {
  if (f.k < 1) return fail("index search: -k must be >= 1");
  if (f.query.find_first_not_of(" \t\r\n") == std::string::npos) return fail("index search: the query is empty");
  ThreadPool::set_default_threads(f.threads);
  if (f.ef_search < 0 || f.ef_search > 100000) return fail("index search: --ef-search must be in [1, 100000]");
  if (f.ef_search > 0 && !f.approx) return fail("index search: --ef-search needs --approx");
  auto index = rag::load_index(f.index);
  if (!index.ok()) return fail(index.status());
  std::optional<rag::AnnSearcher> ann;
  if (f.approx) {
    auto opened = rag::AnnSearcher::open(*index, f.index);
    if (!opened.ok()) return fail(opened.status().Wrap("index search --approx"));
    ann = std::move(*opened);
  }
  const std::string model_path = f.embed_model.empty() ? index->model : f.embed_model;
  auto loaded = load_embedder(model_path);
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  if (!rag::same_model(*index, rag::probe_vector(m, loaded->tokenizer)))
    return fail("index search: '" + f.index + "' was built with another embedding model ('" + index->model +
                "'), not '" + model_path + "'");
  Arena arena;
  auto q = rag::query_vector(m, loaded->tokenizer, f.query, arena);
  if (!q.ok()) return fail(q.status().Wrap("index search: the query"));
  const std::vector<rag::Hit> hits =
      ann ? ann->search(q->data(), f.k, f.ef_search) : rag::search_exact(*index, q->data(), f.k);
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
  b->add_flag("--ann", f->ann, "Also store an approximate index (FAISS HNSW) for `search --approx`");
  b->add_option("--ef-search", f->ef_search, "The approximate index's default efSearch (default 64)");
  b->add_flag("--json", f->json, "Print the summary as JSON");
  b->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  b->callback([f, &cmds] { cmds.run = [f] { return run_build(*f); }; });
  auto* s = c->add_subcommand("search", "The chunks nearest a query (exact cosine search, or --approx)");
  s->add_option("INDEX", f->index, "Index file")->required();
  s->add_option("QUERY", f->query, "Query text")->required();
  s->add_option("-k", f->k, "Hits (default 10)");
  s->add_option("--embed-model", f->embed_model, "Embedding model (default: the one the index names)");
  s->add_flag("--approx", f->approx, "Search the approximate index stored by `build --ann` (FAISS HNSW)");
  s->add_option("--ef-search", f->ef_search, "HNSW candidate list for --approx (default: the stored one; larger: higher recall)");
  s->add_flag("--json", f->json, "One JSON object: the hits with file, lines, bytes, score and text");
  s->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  s->callback([f, &cmds] { cmds.run = [f] { return run_search(*f); }; });
}

}  // namespace longctx::cli
