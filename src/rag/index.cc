#include "rag/index.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "kernels/vec.h"
#include "model/embedding.h"
#include "model/model.h"

namespace longctx::rag {
namespace {

constexpr int64_t kVersion = 1;
// ggml's I8 type id (core/element_type.cc): the approximate index's bytes.
constexpr uint32_t kI8 = 24;

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool indexable_extension(const std::filesystem::path& p) {
  static const std::set<std::string> kExt = {
      ".txt", ".text", ".md", ".markdown", ".rst", ".org", ".tex", ".adoc", ".c", ".cc", ".cpp", ".cxx", ".h",
      ".hh", ".hpp", ".py", ".js", ".ts", ".tsx", ".jsx", ".go", ".rs", ".java", ".kt", ".scala", ".rb", ".php",
      ".cs", ".swift", ".m", ".sh", ".bash", ".zsh", ".pl", ".lua", ".r", ".jl", ".sql", ".html", ".htm", ".css",
      ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".cmake", ".proto", ".csv", ".tsv"};
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  const std::string name = p.filename().string();
  return kExt.count(ext) > 0 || name == "README" || name == "LICENSE" || name == "Makefile" || name == "CMakeLists.txt";
}

// Why a file's bytes cannot be indexed ("" when they can).
std::string unindexable(std::string_view bytes) {
  if (bytes.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos) return "is empty";
  if (bytes.substr(0, 8192).find('\0') != std::string_view::npos) return "is binary (it holds NUL bytes)";
  return "";
}

}  // namespace

uint64_t fnv1a64(std::string_view bytes) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::vector<Chunk> chunk_text(const tokenizer::BpeTokenizer& tok, std::string_view text, int64_t chunk_tokens,
                              int64_t overlap) {
  CHECK(chunk_tokens >= 1 && overlap >= 0 && overlap < chunk_tokens);
  struct Word {
    int64_t begin, end, tokens;
  };
  std::vector<Word> words;
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && is_space(text[i])) ++i;
    if (i >= text.size()) break;
    size_t j = i;
    while (j < text.size() && !is_space(text[j])) ++j;
    words.push_back({static_cast<int64_t>(i), static_cast<int64_t>(j),
                     std::max<int64_t>(1, static_cast<int64_t>(tok.encode(text.substr(i, j - i)).size()))});
    i = j;
  }
  std::vector<int64_t> line_starts = {0};
  for (size_t i = 0; i < text.size(); ++i)
    if (text[i] == '\n') line_starts.push_back(static_cast<int64_t>(i) + 1);
  auto line_of = [&](int64_t byte) {
    return static_cast<int64_t>(std::upper_bound(line_starts.begin(), line_starts.end(), byte) - line_starts.begin());
  };
  std::vector<Chunk> out;
  size_t first = 0;
  while (first < words.size()) {
    size_t end = first;
    int64_t tokens = 0;
    while (end < words.size() && (end == first || tokens + words[end].tokens <= chunk_tokens)) tokens += words[end++].tokens;
    Chunk c;
    c.byte_begin = words[first].begin;
    c.byte_end = words[end - 1].end;
    c.line_begin = line_of(c.byte_begin);
    c.line_end = line_of(c.byte_end - 1);
    c.text = std::string(text.substr(c.byte_begin, c.byte_end - c.byte_begin));
    out.push_back(std::move(c));
    if (end >= words.size()) break;
    // The next chunk starts at the earliest word whose tokens to `end` fit in the overlap, and
    // always after this chunk's first word.
    size_t next = end;
    int64_t shared = 0;
    while (next > first + 1 && shared + words[next - 1].tokens <= overlap) shared += words[--next].tokens;
    first = next;
  }
  return out;
}

Expected<std::vector<Source>> collect_files(const std::vector<std::string>& paths) {
  namespace fs = std::filesystem;
  std::map<std::string, bool> found;  // path -> named
  for (const std::string& p : paths) {
    std::error_code ec;
    const fs::file_status st = fs::status(p, ec);
    if (ec || !fs::exists(st)) return Status::Error("'" + p + "' does not exist");
    if (fs::is_regular_file(st)) {
      found[fs::path(p).lexically_normal().string()] = true;
      continue;
    }
    if (!fs::is_directory(st)) return Status::Error("'" + p + "' is neither a file nor a directory");
    fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
    if (ec) return Status::Error("'" + p + "': " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) return Status::Error("'" + p + "': " + ec.message());
      const std::string name = it->path().filename().string();
      if (!name.empty() && name[0] == '.') {
        if (it->is_directory(ec)) it.disable_recursion_pending();
        continue;
      }
      if (it->is_regular_file(ec) && indexable_extension(it->path())) {
        const std::string key = it->path().lexically_normal().string();
        found.emplace(key, false);
      }
    }
  }
  std::vector<Source> out;
  for (const auto& [path, named] : found) out.push_back({path, named});
  return out;
}

Expected<std::vector<float>> query_vector(model::Model& m, const tokenizer::BpeTokenizer& tok, const std::string& text,
                                         Arena& arena) {
  auto ids = model::embed_tokens(tok, text, m.config().ctx);
  if (!ids.ok()) return ids.status();
  model::EmbedOptions opt = model::default_embed_options(m.config());
  opt.normalize = true;
  return model::embed_batch(m, ThreadPool::global(), arena, {*ids}, opt);
}

std::vector<float> probe_vector(model::Model& m, const tokenizer::BpeTokenizer& tok) {
  Arena arena;
  auto v = query_vector(m, tok, kProbeText, arena);
  CHECK(v.ok());
  return std::move(*v);
}

bool same_model(const Index& index, const std::vector<float>& probe) {
  if (static_cast<int64_t>(probe.size()) != index.dim || index.probe.size() != probe.size()) return false;
  double dot = 0, a = 0, b = 0;
  for (size_t i = 0; i < probe.size(); ++i) {
    dot += double(probe[i]) * index.probe[i];
    a += double(probe[i]) * probe[i];
    b += double(index.probe[i]) * index.probe[i];
  }
  return a > 0 && b > 0 && dot / std::sqrt(a * b) >= 0.9999;
}

Expected<Index> build_index(model::Model& m, const tokenizer::BpeTokenizer& tok, const std::string& model_name,
                            const std::vector<Source>& sources, const Index* previous, const BuildOptions& opt,
                            BuildStats* stats, const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  BuildStats st;
  Index out;
  out.model = model_name;
  out.probe = probe_vector(m, tok);
  out.dim = m.config().model_dim;
  out.chunk_tokens = opt.chunk_tokens;
  out.overlap = opt.overlap;
  std::map<std::pair<std::string, uint64_t>, const IndexedFile*> reusable;
  if (previous && previous->chunk_tokens == opt.chunk_tokens && previous->overlap == opt.overlap &&
      same_model(*previous, out.probe))
    for (const IndexedFile& f : previous->files) reusable[{f.path, f.hash}] = &f;
  // Chunks to embed: (index into out.chunks, ids).
  std::vector<int64_t> todo;
  std::vector<std::vector<int32_t>> todo_ids;
  model::EmbedOptions eo = model::default_embed_options(m.config());
  eo.normalize = true;
  eo.max_tokens = m.config().ctx;
  eo.batch = opt.batch;
  for (const Source& s : sources) {
    auto bytes = io::read_file(s.path);
    if (!bytes.ok()) {
      if (s.named) return bytes.status();
      ++st.files_skipped;
      continue;
    }
    if (const std::string why = unindexable(*bytes); !why.empty()) {
      if (s.named) return Status::Error("'" + s.path + "' " + why + ": nothing to index");
      ++st.files_skipped;
      continue;
    }
    IndexedFile f;
    f.path = s.path;
    f.size = static_cast<int64_t>(bytes->size());
    f.hash = fnv1a64(*bytes);
    f.first_chunk = static_cast<int64_t>(out.chunks.size());
    const int32_t file_no = static_cast<int32_t>(out.files.size());
    auto it = reusable.find({f.path, f.hash});
    if (it != reusable.end()) {
      const IndexedFile& old = *it->second;
      for (int64_t c = old.first_chunk; c < old.first_chunk + old.chunks; ++c) {
        Chunk ch = previous->chunks[c];
        ch.file = file_no;
        out.chunks.push_back(std::move(ch));
        out.vectors.insert(out.vectors.end(), previous->vectors.begin() + c * out.dim,
                           previous->vectors.begin() + (c + 1) * out.dim);
      }
      f.chunks = old.chunks;
      ++st.files_reused;
      st.chunks_reused += old.chunks;
    } else {
      std::vector<Chunk> chunks = chunk_text(tok, *bytes, opt.chunk_tokens, opt.overlap);
      for (Chunk& ch : chunks) {
        ch.file = file_no;
        auto ids = model::embed_tokens(tok, ch.text, eo.max_tokens);
        if (!ids.ok()) return ids.status().Wrap("'" + s.path + "' line " + std::to_string(ch.line_begin));
        st.tokens_embedded += static_cast<int64_t>(ids->size());
        todo.push_back(static_cast<int64_t>(out.chunks.size()));
        todo_ids.push_back(std::move(*ids));
        out.chunks.push_back(std::move(ch));
        out.vectors.insert(out.vectors.end(), out.dim, 0.0f);
      }
      f.chunks = static_cast<int64_t>(chunks.size());
      ++st.files_embedded;
      st.chunks_embedded += f.chunks;
    }
    out.files.push_back(std::move(f));
  }
  if (!todo.empty()) {
    ThreadPool& pool = ThreadPool::global();
    Arena arena;
    // In slices, so progress shows and the token lists are freed as they go.
    const int64_t slice = 512;
    for (int64_t s0 = 0; s0 < static_cast<int64_t>(todo.size()); s0 += slice) {
      const int64_t s1 = std::min<int64_t>(s0 + slice, static_cast<int64_t>(todo.size()));
      std::vector<std::vector<int32_t>> part(std::make_move_iterator(todo_ids.begin() + s0),
                                             std::make_move_iterator(todo_ids.begin() + s1));
      const std::vector<float> vec = model::embed_batch(m, pool, arena, part, eo, [&](int64_t done, int64_t) {
        if (progress) progress(s0 + done, static_cast<int64_t>(todo.size()));
      });
      for (int64_t i = s0; i < s1; ++i)
        std::copy(vec.begin() + (i - s0) * out.dim, vec.begin() + (i - s0 + 1) * out.dim,
                  out.vectors.begin() + todo[i] * out.dim);
    }
  }
  st.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = st;
  return out;
}

Status save_index(const std::string& path, const Index& index) {
  io::GgufWriter w;
  w.set_string("general.type", "longctx.index");
  w.set_u32("index.version", kVersion);
  w.set_string("index.model", index.model);
  w.set_f32_array("index.model_probe", index.probe);
  w.set_u32("index.chunk_tokens", static_cast<uint32_t>(index.chunk_tokens));
  w.set_u32("index.overlap_tokens", static_cast<uint32_t>(index.overlap));
  std::vector<std::string> paths, hashes;
  std::vector<int64_t> sizes, firsts, counts;
  for (const IndexedFile& f : index.files) {
    paths.push_back(f.path);
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(f.hash));
    hashes.push_back(buf);
    sizes.push_back(f.size);
    firsts.push_back(f.first_chunk);
    counts.push_back(f.chunks);
  }
  w.set_string_array("index.file.path", paths);
  w.set_string_array("index.file.hash", hashes);
  w.set("index.file.size", io::GgufValue::array(sizes));
  w.set("index.file.first_chunk", io::GgufValue::array(firsts));
  w.set("index.file.chunks", io::GgufValue::array(counts));
  std::vector<int32_t> file;
  std::vector<int64_t> lb, le, bb, be;
  std::vector<std::string> text;
  for (const Chunk& c : index.chunks) {
    file.push_back(c.file);
    lb.push_back(c.line_begin);
    le.push_back(c.line_end);
    bb.push_back(c.byte_begin);
    be.push_back(c.byte_end);
    text.push_back(c.text);
  }
  w.set_i32_array("index.chunk.file", file);
  w.set("index.chunk.line_begin", io::GgufValue::array(lb));
  w.set("index.chunk.line_end", io::GgufValue::array(le));
  w.set("index.chunk.byte_begin", io::GgufValue::array(bb));
  w.set("index.chunk.byte_end", io::GgufValue::array(be));
  w.set("index.chunk.text", io::GgufValue::array(std::move(text)));
  const int64_t n = static_cast<int64_t>(index.chunks.size());
  // GGUF tensors cannot be empty: an index of no chunks stores none.
  if (n > 0)
    LONGCTX_RETURN_IF_ERROR(w.add_tensor("vectors", {index.dim, n}, kF32, index.vectors.data(),
                                         index.vectors.size() * sizeof(float)));
  // The approximate index (rag/ann.h), when there is one: its graph as raw bytes.
  if (n > 0 && !index.ann.blob.empty()) {
    w.set_string("index.ann.type", index.ann.type);
    w.set_u32("index.ann.m", static_cast<uint32_t>(index.ann.m));
    w.set_u32("index.ann.ef_construction", static_cast<uint32_t>(index.ann.ef_construction));
    w.set_u32("index.ann.ef_search", static_cast<uint32_t>(index.ann.ef_search));
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(fnv1a64(std::string_view(
                                                  reinterpret_cast<const char*>(index.ann.blob.data()), index.ann.blob.size()))));
    w.set_string("index.ann.hash", buf);
    LONGCTX_RETURN_IF_ERROR(w.add_tensor("ann.hnsw", {static_cast<int64_t>(index.ann.blob.size())}, kI8,
                                         index.ann.blob.data(), index.ann.blob.size()));
  }
  return w.write(path);
}

Expected<Index> load_index(const std::string& path) {
  auto opened = io::GgufFile::open(path);
  if (!opened.ok()) return opened.status();
  return read_index(*opened, path);
}

Expected<Index> read_index(const io::GgufFile& f, const std::string& path) {
  auto bad = [&](const std::string& why) { return Status::Error("index '" + path + "': " + why); };
  auto type = f.get_string("general.type");
  if (!type.ok() || *type != "longctx.index") return bad("not a longctx index (general.type is not longctx.index)");
  auto version = f.get_uint("index.version");
  if (!version.ok()) return bad(version.status().message());
  if (*version != kVersion) return bad("index version " + std::to_string(*version) + " is not supported");
  Index ix;
  auto model = f.get_string("index.model");
  auto probe = f.get_float_array("index.model_probe");
  auto ct = f.get_uint("index.chunk_tokens");
  auto ov = f.get_uint("index.overlap_tokens");
  if (!model.ok()) return bad(model.status().message());
  if (!probe.ok()) return bad(probe.status().message());
  if (!ct.ok()) return bad(ct.status().message());
  if (!ov.ok()) return bad(ov.status().message());
  ix.model = *model;
  ix.probe.assign(probe->begin(), probe->end());
  ix.dim = static_cast<int64_t>(ix.probe.size());
  ix.chunk_tokens = static_cast<int64_t>(*ct);
  ix.overlap = static_cast<int64_t>(*ov);
  if (ix.dim < 1 || ix.dim > (1 << 16)) return bad("the probe vector has a bad size");
  auto strings = [&](const char* key) { return f.get_string_array(key); };
  auto ints = [&](const char* key) { return f.get_int_array(key); };
  auto paths = strings("index.file.path"), hashes = strings("index.file.hash"), texts = strings("index.chunk.text");
  auto sizes = ints("index.file.size"), firsts = ints("index.file.first_chunk"), counts = ints("index.file.chunks");
  auto file = ints("index.chunk.file"), lb = ints("index.chunk.line_begin"), le = ints("index.chunk.line_end"),
       bb = ints("index.chunk.byte_begin"), be = ints("index.chunk.byte_end");
  for (auto* e : {&paths, &hashes, &texts})
    if (!e->ok()) return bad(e->status().message());
  for (auto* e : {&sizes, &firsts, &counts, &file, &lb, &le, &bb, &be})
    if (!e->ok()) return bad(e->status().message());
  const size_t nf = paths->size(), nc = texts->size();
  if (hashes->size() != nf || sizes->size() != nf || firsts->size() != nf || counts->size() != nf)
    return bad("the index.file.* arrays differ in length");
  if (file->size() != nc || lb->size() != nc || le->size() != nc || bb->size() != nc || be->size() != nc)
    return bad("the index.chunk.* arrays differ in length");
  int64_t next = 0;
  for (size_t i = 0; i < nf; ++i) {
    IndexedFile fi;
    fi.path = (*paths)[i];
    fi.size = (*sizes)[i];
    char* end = nullptr;
    fi.hash = std::strtoull((*hashes)[i].c_str(), &end, 16);
    if ((*hashes)[i].size() != 16 || *end != '\0') return bad("file " + std::to_string(i) + " has a bad hash");
    fi.first_chunk = (*firsts)[i];
    fi.chunks = (*counts)[i];
    if (fi.first_chunk != next || fi.chunks < 0 || fi.first_chunk + fi.chunks > static_cast<int64_t>(nc))
      return bad("file " + std::to_string(i) + "'s chunks are out of order or out of range");
    next += fi.chunks;
    ix.files.push_back(std::move(fi));
  }
  if (next != static_cast<int64_t>(nc)) return bad("the files do not cover the chunks");
  for (size_t i = 0; i < nc; ++i) {
    Chunk c;
    c.file = static_cast<int32_t>((*file)[i]);
    c.line_begin = (*lb)[i];
    c.line_end = (*le)[i];
    c.byte_begin = (*bb)[i];
    c.byte_end = (*be)[i];
    c.text = std::move((*texts)[i]);
    if (c.file < 0 || c.file >= static_cast<int64_t>(nf) || c.line_begin < 1 || c.line_end < c.line_begin ||
        c.byte_begin < 0 || c.byte_end < c.byte_begin)
      return bad("chunk " + std::to_string(i) + " has a bad location");
    ix.chunks.push_back(std::move(c));
  }
  const io::GgufTensorInfo* v = f.find_tensor("vectors");
  if (nc == 0) {
    if (v) return bad("an index of no chunks holds vectors");
    return ix;
  }
  if (!v || v->type != kF32 || v->dims.size() != 2 || v->dims[0] != ix.dim || v->dims[1] != static_cast<int64_t>(nc))
    return bad("the vectors tensor is missing or not F32 [" + std::to_string(nc) + ", " + std::to_string(ix.dim) + "]");
  const float* data = reinterpret_cast<const float*>(v->data);
  ix.vectors.assign(data, data + nc * ix.dim);
  for (float x : ix.vectors)
    if (!std::isfinite(x)) return bad("the vectors hold a value that is not finite");
  // The approximate index: optional. Its bytes are checked against index.ann.hash here; the graph
  // itself is parsed and checked when searched (rag::AnnSearcher::open).
  const io::GgufTensorInfo* a = f.find_tensor("ann.hnsw");
  auto atype = f.get_string("index.ann.type");
  if (!a && !atype.ok()) return ix;
  if (!a) return bad("index.ann.type is set but the ann.hnsw tensor is missing");
  auto am = f.get_uint("index.ann.m"), aefc = f.get_uint("index.ann.ef_construction"),
       aefs = f.get_uint("index.ann.ef_search");
  auto ahash = f.get_string("index.ann.hash");
  if (!atype.ok() || !am.ok() || !aefc.ok() || !aefs.ok() || !ahash.ok())
    return bad("the approximate index (ann.hnsw) is missing its index.ann.* keys");
  if (*atype != "hnsw") return bad("the approximate index has an unknown type '" + *atype + "'");
  if (a->type != kI8 || a->dims.size() != 1 || a->n_bytes == 0 || a->dims[0] != static_cast<int64_t>(a->n_bytes))
    return bad("the ann.hnsw tensor is not I8 bytes");
  ix.ann.type = *atype;
  ix.ann.m = static_cast<int64_t>(*am);
  ix.ann.ef_construction = static_cast<int64_t>(*aefc);
  ix.ann.ef_search = static_cast<int64_t>(*aefs);
  ix.ann.blob.assign(a->data, a->data + a->n_bytes);
  char hbuf[17];
  std::snprintf(hbuf, sizeof hbuf, "%016llx", static_cast<unsigned long long>(fnv1a64(std::string_view(
                                                  reinterpret_cast<const char*>(a->data), a->n_bytes))));
  if (*ahash != hbuf) return bad("the approximate index (ann.hnsw) is damaged: its bytes do not match index.ann.hash");
  return ix;
}

std::vector<Hit> search_exact(const Index& index, const float* query, int64_t k) {
  const int64_t n = static_cast<int64_t>(index.chunks.size()), D = index.dim;
  std::vector<Hit> all(n);
  ThreadPool::global().parallel_range(n, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) all[r] = {r, kernels::vec_dot(index.vectors.data() + r * D, query, D)};
  });
  k = std::min(k, n);
  auto better = [](const Hit& a, const Hit& b) { return a.score != b.score ? a.score > b.score : a.chunk < b.chunk; };
  std::partial_sort(all.begin(), all.begin() + k, all.end(), better);
  all.resize(k);
  return all;
}

}  // namespace longctx::rag
