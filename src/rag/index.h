// A retrieval index: documents cut into overlapping chunks of about N tokens, each chunk's
// embedding from an embedding model (model/embedding.h), and exact nearest-neighbour search by
// cosine similarity. Each chunk keeps where it came from: its file, line range and byte range,
// and its text. The index is one GGUF file (general.type "longctx.index"), written atomically:
//   index.version, index.model (the embedding model as given), index.model_probe (the model's
//   vector of a fixed probe text: an index is only searched with the model that built it),
//   index.chunk_tokens, index.overlap_tokens, index.file.{path,size,hash,first_chunk,chunks},
//   index.chunk.{file,line_begin,line_end,byte_begin,byte_end,text}, and the tensor "vectors"
//   [chunks, dim] F32 (L2-normalised). Optionally an approximate nearest-neighbour index over the
//   vectors (rag/ann.h): keys index.ann.* and the I8 tensor "ann.hnsw" (files without them load
//   as before, with no approximate index).
// Rebuilding over an existing index re-embeds only the files whose bytes changed.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/arena.h"
#include "core/status.h"
#include "io/gguf.h"
#include "tokenizer/bpe.h"

namespace longctx::model {
class Model;
}

namespace longctx::rag {

struct IndexedFile {
  std::string path;
  int64_t size = 0;
  uint64_t hash = 0;  // FNV-1a 64 of the bytes
  int64_t first_chunk = 0, chunks = 0;
};

struct Chunk {
  int32_t file = 0;
  int64_t line_begin = 0, line_end = 0;  // 1-based, inclusive
  int64_t byte_begin = 0, byte_end = 0;  // [begin, end) in the file
  std::string text;
};

// The approximate index as stored (rag/ann.h builds, checks and searches it); blob empty: none.
struct AnnData {
  std::string type;  // "hnsw"
  int64_t m = 0, ef_construction = 0, ef_search = 0;
  std::vector<uint8_t> blob;  // faiss::write_index bytes of the graph, without the vectors
};

struct Index {
  std::string model;
  std::vector<float> probe;  // [dim]
  int64_t dim = 0, chunk_tokens = 0, overlap = 0;
  std::vector<IndexedFile> files;
  std::vector<Chunk> chunks;
  std::vector<float> vectors;  // [chunks, dim]
  AnnData ann;                 // built from `vectors` (rag::build_ann); must be rebuilt when they change
};

// The text every index embeds to recognise its model.
inline constexpr const char* kProbeText = "longctx index probe: which embedding model made these vectors?";

uint64_t fnv1a64(std::string_view bytes);

// Cuts text into chunks of at most chunk_tokens tokens (counted with tok, without BOS/EOS), at
// whitespace, consecutive chunks sharing about `overlap` tokens. A word longer than a chunk is a
// chunk of its own. Line and byte ranges are filled; `file` is left 0.
std::vector<Chunk> chunk_text(const tokenizer::BpeTokenizer& tok, std::string_view text, int64_t chunk_tokens,
                              int64_t overlap);

// The files under `paths` an index takes: regular files named, and under directories
// (recursively, hidden entries skipped) the files of text, Markdown and source extensions.
// Sorted, duplicates removed. Errors: a path that does not exist.
struct Source {
  std::string path;
  bool named = false;  // given on the command line (not found in a directory)
};
Expected<std::vector<Source>> collect_files(const std::vector<std::string>& paths);

struct BuildOptions {
  int64_t chunk_tokens = 256, overlap = 32;
  int64_t batch = 32;  // texts per pass (model/embedding.h)
};
struct BuildStats {
  int64_t files_embedded = 0, files_reused = 0, files_skipped = 0;  // skipped: empty or binary, in a directory
  int64_t chunks_embedded = 0, chunks_reused = 0, tokens_embedded = 0;
  double seconds = 0;
};
// Builds the index of `sources` with an embedding model, taking the chunks and vectors of files
// whose bytes are unchanged from `previous` (built with the same model and chunking; else null).
// Errors: a named file that is empty, binary or unreadable.
Expected<Index> build_index(model::Model& m, const tokenizer::BpeTokenizer& tok, const std::string& model_name,
                            const std::vector<Source>& sources, const Index* previous, const BuildOptions& opt,
                            BuildStats* stats, const std::function<void(int64_t done, int64_t total)>& progress);
// A text's L2-normalised embedding as the index's chunks get theirs (a query's). Error: a blank
// text.
Expected<std::vector<float>> query_vector(model::Model& m, const tokenizer::BpeTokenizer& tok, const std::string& text,
                                         Arena& arena);
// The model's probe vector (kProbeText).
std::vector<float> probe_vector(model::Model& m, const tokenizer::BpeTokenizer& tok);

Status save_index(const std::string& path, const Index& index);
// Errors name the file and the problem (not an index, a damaged or inconsistent one).
Expected<Index> load_index(const std::string& path);
// The same from a parsed GGUF (`path` names it in errors).
Expected<Index> read_index(const io::GgufFile& f, const std::string& path);

// Whether a model's probe vector is the index's: cosine >= 0.9999 and the same dimension.
bool same_model(const Index& index, const std::vector<float>& probe);

struct Hit {
  int64_t chunk = 0;
  float score = 0;  // cosine similarity
};
// The k chunks most similar to the (L2-normalised) query, best first; ties by chunk number.
std::vector<Hit> search_exact(const Index& index, const float* query, int64_t k);

}  // namespace longctx::rag
