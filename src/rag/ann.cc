#include "rag/ann.h"

#include <algorithm>
#include <mutex>
#include <string>
#include <utility>

#ifdef LONGCTX_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#include <omp.h>
#endif

namespace longctx::rag {
namespace {

#ifdef LONGCTX_HAVE_FAISS
// L2 over the normalised vectors: the same order as cosine (|a-b|^2 = 2 - 2 cos), and FAISS
// 1.7.3's HNSW with METRIC_INNER_PRODUCT measured worse here (recall@10 stuck at 0.93 on the
// test's data however large efSearch); scores are turned back into cosines (1 - d/2).
constexpr faiss::MetricType kMetric = faiss::METRIC_L2;
#endif

constexpr const char* kNoFaiss =
    "approximate search: longctx was built without FAISS (install libfaiss-dev, scripts/setup.sh, and rebuild)";

#ifdef LONGCTX_HAVE_FAISS
void sort_hits(std::vector<Hit>& hits) {
  std::sort(hits.begin(), hits.end(),
            [](const Hit& a, const Hit& b) { return a.score != b.score ? a.score > b.score : a.chunk < b.chunk; });
}

std::string one_line(std::string s) {
  for (char& c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

// The graph's links all in range, and every link at a level leads to a node that has that level:
// FAISS's search indexes by them unchecked, so a crafted blob that passed the hash could
// otherwise read out of bounds.
Status check_graph(const faiss::HNSW& g, int64_t n) {
  auto bad = [](const std::string& why) { return Status::Error("the HNSW graph is inconsistent: " + why); };
  const auto& cum = g.cum_nneighbor_per_level;
  if (cum.size() < 2 || cum[0] != 0) return bad("bad per-level neighbour counts");
  for (size_t l = 1; l < cum.size(); ++l)
    if (cum[l] < cum[l - 1] || cum[l] > (1 << 20)) return bad("bad per-level neighbour counts");
  if (static_cast<int64_t>(g.levels.size()) != n || static_cast<int64_t>(g.offsets.size()) != n + 1 || g.offsets[0] != 0)
    return bad("levels or offsets do not match the vectors");
  if (g.max_level < 0 || g.max_level + 1 >= static_cast<int>(cum.size())) return bad("bad max level");
  for (int64_t i = 0; i < n; ++i) {
    const int lv = g.levels[i];
    if (lv < 1 || lv > g.max_level + 1) return bad("node " + std::to_string(i) + " has a bad level");
    if (g.offsets[i + 1] < g.offsets[i] || g.offsets[i + 1] - g.offsets[i] != static_cast<size_t>(cum[lv]))
      return bad("node " + std::to_string(i) + " has bad offsets");
  }
  if (g.neighbors.size() != g.offsets[n]) return bad("the neighbour table has the wrong size");
  if (g.entry_point < 0 || g.entry_point >= n || g.levels[g.entry_point] != g.max_level + 1)
    return bad("bad entry point");
  for (int64_t i = 0; i < n; ++i)
    for (int l = 0; l < g.levels[i]; ++l)
      for (size_t j = g.offsets[i] + cum[l]; j < g.offsets[i] + cum[l + 1]; ++j) {
        const int64_t to = g.neighbors[j];
        if (to == -1) continue;
        if (to < 0 || to >= n || g.levels[to] <= l) return bad("node " + std::to_string(i) + " has a bad link");
      }
  return Status::Ok();
}
#endif

}  // namespace

bool ann_available() {
#ifdef LONGCTX_HAVE_FAISS
  return true;
#else
  return false;
#endif
}

#ifdef LONGCTX_HAVE_FAISS
struct AnnSearcher::Impl {
  std::unique_ptr<faiss::IndexHNSWFlat> hnsw;  // owns its storage (a copy of the vectors)
  int64_t ef_search = 64;
  // FAISS 1.7.3 ignores SearchParametersHNSW::efSearch (measured: recall did not move from
  // efSearch 64 to 4000), so searches set hnsw.efSearch on the index, one at a time.
  std::mutex mu;
};
#else
struct AnnSearcher::Impl {};
#endif

AnnSearcher::AnnSearcher() = default;
AnnSearcher::~AnnSearcher() = default;
AnnSearcher::AnnSearcher(AnnSearcher&&) noexcept = default;
AnnSearcher& AnnSearcher::operator=(AnnSearcher&&) noexcept = default;

Status build_ann(Index& index, const AnnOptions& opt) {
#ifdef LONGCTX_HAVE_FAISS
  if (opt.m < 2 || opt.m > 256) return Status::Error("approximate index: M must be in [2, 256]");
  if (opt.ef_construction < 1 || opt.ef_search < 1)
    return Status::Error("approximate index: efConstruction and efSearch must be >= 1");
  index.ann = {};
  const int64_t n = static_cast<int64_t>(index.chunks.size());
  if (n == 0) return Status::Ok();
  if (n >= (int64_t{1} << 31)) return Status::Error("approximate index: more than 2^31 chunks");
  try {
    faiss::IndexHNSWFlat h(static_cast<int>(index.dim), static_cast<int>(opt.m), kMetric);
    h.hnsw.efConstruction = static_cast<int>(opt.ef_construction);
    h.hnsw.efSearch = static_cast<int>(opt.ef_search);
    h.add(n, index.vectors.data());
    // Serialise the graph with an empty storage in place of the vectors' copy: the index file
    // holds the vectors already ("vectors"), and AnnSearcher::open puts them back.
    faiss::IndexFlat empty(static_cast<int>(index.dim), kMetric);
    faiss::Index* full = h.storage;
    h.storage = &empty;
    faiss::VectorIOWriter w;
    try {
      faiss::write_index(&h, &w);
    } catch (...) {
      h.storage = full;
      throw;
    }
    h.storage = full;
    index.ann.type = "hnsw";
    index.ann.m = opt.m;
    index.ann.ef_construction = opt.ef_construction;
    index.ann.ef_search = opt.ef_search;
    index.ann.blob = std::move(w.data);
  } catch (const std::exception& e) {
    index.ann = {};
    return Status::Error("approximate index: FAISS failed: " + one_line(e.what()));
  }
  return Status::Ok();
#else
  return Status::Error(kNoFaiss);
#endif
}

Expected<AnnSearcher> AnnSearcher::open(const Index& index, const std::string& path) {
#ifdef LONGCTX_HAVE_FAISS
  auto bad = [&](const std::string& why) {
    return Status::Error("index '" + path + "': the approximate index (ann.hnsw) is damaged: " + why);
  };
  if (index.ann.blob.empty())
    return Status::Error("index '" + path + "' has no approximate index (build it with `longctx index build --ann`)");
  if (index.ann.type != "hnsw") return Status::Error("index '" + path + "': unknown approximate index type '" + index.ann.type + "'");
  const int64_t n = static_cast<int64_t>(index.chunks.size());
  AnnSearcher out;
  out.impl_ = std::make_unique<Impl>();
  out.impl_->ef_search = index.ann.ef_search > 0 ? index.ann.ef_search : 64;
  try {
    faiss::VectorIOReader r;
    r.data = index.ann.blob;
    std::unique_ptr<faiss::Index> read(faiss::read_index(&r));
    if (r.rp != r.data.size()) return bad("bytes left over after the graph");
    auto* h = dynamic_cast<faiss::IndexHNSWFlat*>(read.get());
    if (!h) return bad("it is not an HNSW index over flat vectors");
    read.release();
    out.impl_->hnsw.reset(h);
    if (h->d != index.dim || h->ntotal != n || h->metric_type != kMetric || !h->storage ||
        h->storage->ntotal != 0 || h->storage->d != index.dim)
      return bad("it was not built over this index's " + std::to_string(n) + " vectors of dimension " +
                 std::to_string(index.dim) + " (L2)");
    if (Status s = check_graph(h->hnsw, n); !s.ok()) return bad(s.message());
    // Put the vectors back under the graph.
    auto storage = std::make_unique<faiss::IndexFlat>(static_cast<int>(index.dim), kMetric);
    storage->add(n, index.vectors.data());
    if (h->own_fields) delete h->storage;
    h->storage = storage.release();
    h->own_fields = true;
  } catch (const std::exception& e) {
    return bad(one_line(e.what()));
  }
  return out;
#else
  return Status::Error(kNoFaiss);
#endif
}

int64_t AnnSearcher::default_ef_search() const {
#ifdef LONGCTX_HAVE_FAISS
  return impl_ ? impl_->ef_search : 0;
#else
  return 0;
#endif
}

std::vector<std::vector<Hit>> AnnSearcher::search_batch(const float* queries, int64_t nq, int64_t k,
                                                        int64_t ef_search) const {
  std::vector<std::vector<Hit>> out(static_cast<size_t>(std::max<int64_t>(nq, 0)));
#ifdef LONGCTX_HAVE_FAISS
  if (!impl_ || !impl_->hnsw || nq <= 0 || k <= 0) return out;
  faiss::IndexHNSWFlat& h = *impl_->hnsw;
  k = std::min<int64_t>(k, h.ntotal);
  if (k <= 0) return out;
  std::vector<float> dist(nq * k);
  std::vector<faiss::Index::idx_t> labels(nq * k);
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    h.hnsw.efSearch = static_cast<int>(std::max<int64_t>(ef_search > 0 ? ef_search : impl_->ef_search, k));
    // One query: no OpenMP team (its start and barrier cost more than the search on a busy
    // machine). omp_set_num_threads sets this thread's own setting only.
    const int saved = omp_get_max_threads();
    if (nq == 1) omp_set_num_threads(1);
    try {
      h.search(nq, queries, k, dist.data(), labels.data());
    } catch (...) {
      omp_set_num_threads(saved);
      throw;
    }
    omp_set_num_threads(saved);
  }
  for (int64_t q = 0; q < nq; ++q) {
    std::vector<Hit>& hits = out[q];
    for (int64_t i = 0; i < k; ++i)
      if (labels[q * k + i] >= 0) hits.push_back({labels[q * k + i], 1.0f - 0.5f * dist[q * k + i]});
    sort_hits(hits);
  }
#endif
  return out;
}

std::vector<Hit> AnnSearcher::search(const float* query, int64_t k, int64_t ef_search) const {
  auto all = search_batch(query, 1, k, ef_search);
  return all.empty() ? std::vector<Hit>{} : std::move(all[0]);
}

}  // namespace longctx::rag
