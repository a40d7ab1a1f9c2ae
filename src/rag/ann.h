// Approximate nearest-neighbour search over a retrieval index's vectors (rag/index.h), with FAISS.
//
// The structure is FAISS's HNSW graph (IndexHNSWFlat, M=32, efConstruction=80). The vectors are
// L2-normalised, so L2 order is cosine order (|a-b|^2 = 2 - 2 cos) and hits carry cosines
// (1 - d/2) like search_exact's. The graph is built with METRIC_L2: FAISS 1.7.3's inner-product
// HNSW measured no better, and L2 is its main path. HNSW rather than IVF: it needs no training
// pass (an IVF's k-means would be redone on every incremental build, and is poor on small
// indexes), and it reached recall@10 0.99 at efSearch 64 on the test's 100k embedding-like vectors
// without tuning nprobe to the data's cluster count. Its cost is the build: about a minute per
// 100k vectors of dimension 384 on 2 cores (embedding those chunks takes far longer);
// efConstruction=40 measured recall@10 0.94 at efSearch 128 on the same data.
// See docs/BENCHMARKS.md ("Approximate search").
//
// Stored in the index file: the graph as FAISS serialises it (faiss::write_index) WITHOUT the
// vectors (the "vectors" tensor already holds them; the graph is re-attached to them on load),
// as the I8 tensor "ann.hnsw", with keys index.ann.type ("hnsw"), index.ann.m,
// index.ann.ef_construction, index.ann.ef_search (the default at search) and index.ann.hash
// (FNV-1a 64 of the blob, hex). A damaged blob is an error on load, never a crash: the hash is
// checked, FAISS's exceptions are caught and the graph's links are range-checked.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "rag/index.h"

namespace longctx::rag {

struct AnnOptions {
  int64_t m = 32;                // HNSW links per node (2M at the bottom layer)
  int64_t ef_construction = 80;  // candidate list while building
  int64_t ef_search = 64;        // candidate list while searching (stored as the default)
};

// Whether this build has FAISS (else the functions below return "built without FAISS").
bool ann_available();

// Builds the approximate index over index.vectors and stores it in index.ann (replacing any).
// An index of no chunks gets none (index.ann cleared).
Status build_ann(Index& index, const AnnOptions& opt);

// A searchable approximate index: the graph in index.ann attached to index.vectors. The Index
// must outlive it and its vectors stay unchanged.
class AnnSearcher {
 public:
  AnnSearcher();
  ~AnnSearcher();
  AnnSearcher(AnnSearcher&&) noexcept;
  AnnSearcher& operator=(AnnSearcher&&) noexcept;

  // Errors: no approximate index, built without FAISS, a damaged or inconsistent blob (`path`
  // names the file in errors).
  static Expected<AnnSearcher> open(const Index& index, const std::string& path);

  // The k nearest chunks (inner product = cosine), best first; ties by chunk number.
  // ef_search <= 0: the stored default. ef_search is raised to k when below it.
  std::vector<Hit> search(const float* query, int64_t k, int64_t ef_search = 0) const;
  // nq queries [nq, dim] at once (FAISS spreads them over its OpenMP threads).
  std::vector<std::vector<Hit>> search_batch(const float* queries, int64_t nq, int64_t k,
                                             int64_t ef_search = 0) const;
  int64_t default_ef_search() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace longctx::rag
