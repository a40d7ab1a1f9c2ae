// Tiled exact attention (FlashAttention-2 style) on the CPU.
//
// Work list ("plan"): queries are cut into blocks of `br` positions (aligned to multiples of br
// in absolute position), keys into a grid of `bc` columns. For each query block the pattern
// yields the key spans it visits; each span is cut at the grid lines into tiles, flagged when a
// per-row mask is needed. Only visited tiles are computed, so the cost follows the pattern, and
// the plan itself is linear in length (spans per query block, runs of query blocks per key
// column), so memory is O(seq_len) beyond the per-thread tile buffers.
//
// The heads of a GQA group share K/V: a task packs the group's query rows of one block on top
// of each other (group * br rows) and runs each tile as two OpenBLAS products on the calling
// thread:
//   forward   S = (scale Q) K^T, online softmax (running max m, sum l, O rescaled), O += P V;
//             saves lse = m + log l per row. Tasks: (batch, kv head, query block).
//   backward  one pass over key columns, tasks (batch, kv head, key column), recomputing
//             P = exp(S - lse) from the saved lse, so nothing of size seq_len x kv_len is
//             ever stored: per tile dV += P^T dO, dP = dO V^T, dS = P (dP - D) with
//             D = rowsum(dO * O), dK += dS^T (scale Q), and the tile's share of dQ,
//             scale dS K: five products per tile (the forward's two recomputed once, not
//             twice as a separate dQ pass would). dK and dV rows belong to their column's
//             task. A query block's dQ rows take the shares of its tiles in one fixed order
//             (for_tiles order: ascending keys), each tile waiting for its turn on a
//             per-block counter, so the sums, as everything else here, do not depend on the
//             thread count. Tasks are taken in ascending order and a block's earlier tiles
//             sit in earlier (or the same) columns, so a turn never waits for a task not yet
//             running.
// Tasks are taken dynamically (causal blocks differ in cost), heaviest first.
//
// Tile sizes: 256 stacked query rows x 256 keys by default, chosen by a sweep of causal
// attention at 8K (8 heads, head_dim 64, 2 threads; `longctx bench attention --tiles R,C`) on
// the 2-core Xeon (48 KiB L1d, 2 MiB L2 per core): forward 0.42 s at 256x256 against
// 0.47-0.54 s for 64 or 128 rows and 0.41-0.49 s for 256x512 / 512x256. A tile's S and dP are
// 256 KiB each; with the Q, K, V and dO blocks the working set stays inside L2.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "attention/attention.h"
#include "core/check.h"
#include "kernels/kv_tile.h"
#include "kernels/gemm_bf16.h"
#include "kernels/tile_gemm.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "quant/fp16.h"
#include "quant/formats.h"

namespace longctx::attention {
namespace {

constexpr int64_t kQueryRows = 256;
constexpr int64_t kKeyCols = 256;
// Fewer forward tasks than this (decoding: one per KV head) split their key tiles (split-K).
constexpr int64_t kMinForwardTasks = 16;
// Stacked query blocks of at most this many rows (decoding, short chunks) read K/V tiles in
// place through kernels/kv_tile.h, in the cache's element type; taller ones convert the tile
// to fp32 (when not fp32 already) and run two sgemms, which win once the tile is reused by
// enough rows.
constexpr int64_t kDirectRows = 16;
// Row-invariant blocks take the in-place kernels at any height, up to this many stacked rows.
constexpr int64_t kInvariantRows = 64;

struct Tile {
  int64_t qb, lo, hi;
  bool masked;
};

// Memory O(seq_len + kv_len): per query block its merged key spans (a causal block has two),
// per key cell runs of consecutive query blocks that visit the same keys. Tiles are cut on the
// fly, so nothing quadratic is ever stored.
struct Plan {
  struct Run {
    int64_t qb_lo, qb_hi, lo, hi;  // query blocks [qb_lo, qb_hi) all visit keys [lo, hi)
    bool masked;
  };
  int64_t br = 0, bc = 0, group = 0, n_qb = 0, n_cells = 0;
  // Row-invariant forward of a causal pattern: a row's softmax covers its own keys only (those
  // up to its position), not the columns its block's later rows add to a tile.
  bool row_extent = false;
  bool invariant = false;  // row-invariant: every block on the in-place kernels
  std::vector<int64_t> q_lo, q_hi;    // local query rows [q_lo, q_hi) of each block
  // Gathered rows (AttentionDims::q_pos): each query row's position in key-row space, the last
  // key row it sees (-1: none), which the pattern (Causal or Full over key rows) is asked about.
  std::vector<int64_t> q_at;
  std::vector<KeySpan> spans;         // spans of block i: [span_begin[i], span_begin[i+1])
  std::vector<int64_t> span_begin;
  std::vector<Run> runs;              // runs of cell c: [cell_begin[c], cell_begin[c+1])
  std::vector<int64_t> cell_begin;

  int64_t max_rows() const {
    int64_t m = 0;
    for (int64_t i = 0; i < n_qb; ++i) m = std::max(m, q_hi[i] - q_lo[i]);
    return m;
  }
  // Calls f(Tile) for the tiles of query block qb: its spans cut at the key grid.
  template <class F>
  void for_tiles(int64_t qb, F&& f) const {
    for (int64_t i = span_begin[qb]; i < span_begin[qb + 1]; ++i)
      for (int64_t lo = spans[i].lo; lo < spans[i].hi;) {
        const int64_t hi = std::min(spans[i].hi, (lo / bc + 1) * bc);
        f(Tile{qb, lo, hi, spans[i].masked});
        lo = hi;
      }
  }
};

// max_cols: the key tile never exceeds it (a paged cache's page; a power of two, as the grid).
Plan make_plan(const AttentionDims& d, const MaskView& mask, TileSizes ts, int64_t max_cols = INT64_MAX) {
  Plan p;
  p.group = d.heads / d.kv_heads;
  const int64_t rows = ts.query_rows > 0 ? ts.query_rows : kQueryRows;
  // Row-invariant: blocks of several positions only under the plain causal pattern, where every
  // row of a block visits the same tiles (a window or BigBird block's rows may not), the others
  // one position per block. As many positions as the in-place kernels treat row by row alike
  // (kernels::kv_invariant_positions), a power of two: aligned to multiples of it, a block never
  // straddles a key tile.
  const bool plain_causal = std::holds_alternative<Causal>(mask.pattern());
  p.bc = std::min(ts.key_cols > 0 ? ts.key_cols : kKeyCols, max_cols);
  p.br = ts.row_invariant
             ? (plain_causal ? std::min(p.bc, kernels::kv_invariant_positions(p.group, d.head_dim, kInvariantRows)) : 1)
         : mask.query_block_hint() > 0 ? mask.query_block_hint()
                                       : std::max<int64_t>(1, rows / p.group);
  p.invariant = ts.row_invariant;
  p.row_extent = ts.row_invariant && is_causal(mask.pattern());
  const bool gathered = d.q_pos != nullptr;
  CHECK((d.k_pos != nullptr) == gathered);
  if (gathered) {
    const bool full = std::holds_alternative<Full>(mask.pattern());
    CHECK_MSG(full || plain_causal, "attention over gathered rows takes the causal or full pattern");
    CHECK(!ts.row_invariant && d.kv_first == 0);
    p.q_at.resize(d.seq_len);
    for (int64_t t = 0; t < d.seq_len; ++t)
      p.q_at[t] = full ? d.kv_len - 1 : std::upper_bound(d.k_pos, d.k_pos + d.kv_len, d.q_pos[t]) - d.k_pos - 1;
  }
  // Query blocks aligned to absolute multiples of br (gathered rows: br rows each).
  for (int64_t t = 0; t < d.seq_len;) {
    const int64_t pos = d.q_pos0 + t;
    const int64_t end = gathered ? std::min(d.seq_len, t + p.br) : std::min(d.seq_len, (pos / p.br + 1) * p.br - d.q_pos0);
    p.q_lo.push_back(t);
    p.q_hi.push_back(end);
    t = end;
  }
  p.n_qb = static_cast<int64_t>(p.q_lo.size());
  p.n_cells = (d.kv_len + p.bc - 1) / p.bc;
  p.span_begin.push_back(0);
  std::vector<std::vector<Plan::Run>> per_cell(p.n_cells);
  for (int64_t i = 0; i < p.n_qb; ++i) {
    const size_t first = p.spans.size();
    if (ts.row_invariant && plain_causal) {
      // The keys before the block's key tile, then that tile up to the block's end, masked: a
      // row's tiles are then those of the grid whatever block it is in (a causal block's own
      // spans would cut the tile at the block's first row).
      const int64_t q0 = d.q_pos0 + p.q_lo[i], cell = q0 / p.bc * p.bc;
      if (cell > 0) p.spans.push_back({0, cell, false});
      p.spans.push_back({cell, d.q_pos0 + p.q_hi[i], true});
    } else if (gathered) {
      // The block's rows sit at q_at[q_lo] .. q_at[q_hi - 1] (ascending, maybe repeated).
      mask.key_spans(p.q_at[p.q_lo[i]], p.q_at[p.q_hi[i] - 1] + 1, &p.spans);
    } else {
      mask.key_spans(d.q_pos0 + p.q_lo[i], d.q_pos0 + p.q_hi[i], &p.spans);
    }
    if (d.kv_first > 0) {  // keys a cache gave back are cut off the spans
      size_t o = first;
      for (size_t j = first; j < p.spans.size(); ++j) {
        KeySpan sp = p.spans[j];
        sp.lo = std::max(sp.lo, d.kv_first);
        if (sp.lo < sp.hi) p.spans[o++] = sp;
      }
      p.spans.resize(o);
    }
    p.span_begin.push_back(static_cast<int64_t>(p.spans.size()));
    p.for_tiles(i, [&](const Tile& t) {
      auto& v = per_cell[t.lo / p.bc];
      if (!v.empty() && v.back().qb_hi == i && v.back().lo == t.lo && v.back().hi == t.hi && v.back().masked == t.masked)
        ++v.back().qb_hi;
      else
        v.push_back({i, i + 1, t.lo, t.hi, t.masked});
    });
  }
  p.cell_begin.push_back(0);
  for (auto& v : per_cell) {
    p.runs.insert(p.runs.end(), v.begin(), v.end());
    p.cell_begin.push_back(static_cast<int64_t>(p.runs.size()));
  }
  return p;
}

// Per-thread scratch, allocated once per call (no state survives between calls).
struct Scratch {
  std::unique_ptr<float[]> mem;
  float *qs, *dos, *s, *dp, *acc, *acc2, *m, *l, *lse, *D, *dq;
  std::vector<KeySpan> spans;
  std::vector<int64_t> ext;  // row-invariant forward: each row's columns of a tile (online_softmax)
  Scratch(int64_t R, int64_t bc, int64_t hd) : ext(R) {
    const int64_t sizes[11] = {R * hd, R * hd, R * bc, R * bc, std::max(R, bc) * hd, bc * hd, R, R, R, R, R * hd};
    int64_t total = 0;
    for (int64_t n : sizes) total += (n + 15) / 16 * 16;
    mem.reset(new float[total]);
    float* p = mem.get();
    float** dst[11] = {&qs, &dos, &s, &dp, &acc, &acc2, &m, &l, &lse, &D, &dq};
    for (int i = 0; i < 11; ++i) {
      *dst[i] = p;
      p += (sizes[i] + 15) / 16 * 16;
    }
  }
};

// One Scratch per pool thread, made on the thread's first task of a call.
class ScratchSet {
 public:
  ScratchSet(int threads, int64_t rows, int64_t bc, int64_t hd) : s_(threads), rows_(rows), bc_(bc), hd_(hd) {}
  Scratch& get(int thread) {
    if (!s_[thread]) s_[thread] = std::make_unique<Scratch>(rows_, bc_, hd_);
    return *s_[thread];
  }

 private:
  std::vector<std::unique_ptr<Scratch>> s_;
  int64_t rows_, bc_, hd_;
};

// Everything a task needs about the call, with the row bookkeeping of a stacked block.
struct Ctx {
  const AttentionDims& d;
  const AttentionSpec& spec;
  const Plan& plan;
  float scale;
  bool bf16;    // TileSizes::bf16: the tile products in bf16
  bool fp32_k;  // TileSizes::fp32_kernels: fp32 tile products on kernels::tile_gemm
  bool exp_np;  // TileSizes::fp32_kernels (a pass without a cache): exp_sum's shorter polynomial
  Ctx(const AttentionDims& dims, const AttentionSpec& sp, const Plan& p, TileSizes ts = {})
      : d(dims), spec(sp), plan(p),
        scale(sp.scale > 0 ? sp.scale : 1.0f / std::sqrt(static_cast<float>(dims.head_dim))),
        bf16(ts.bf16 && kernels::gemm_bf16_supported()),
        fp32_k(ts.fp32_kernels && kernels::tile_gemm_supported()),
        exp_np(ts.fp32_kernels) {}

  // A tile's matrix product on the calling thread (kernels::gemm_serial's arguments): bf16 on the
  // AMX tiles, fp32 on AVX-512 register blocks (kernels/tile_gemm.h), or fp32 through OpenBLAS.
  void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
            const float* B, int64_t ldb, float beta, float* C, int64_t ldc) const {
    if (bf16)
      kernels::gemm_bf16_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (fp32_k)
      kernels::tile_gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
      kernels::gemm_serial(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  }

  int64_t rows(int64_t qb) const { return plan.q_hi[qb] - plan.q_lo[qb]; }
  // Stacked row r of block qb: head g * group + r / rows, local query row q_lo + r % rows.
  int head_of(int g, int64_t qb, int64_t r) const { return g * int(plan.group) + int(r / rows(qb)); }
  int64_t t_of(int64_t qb, int64_t r) const { return plan.q_lo[qb] + r % rows(qb); }
  template <class T>
  T* kv(T* base, int64_t b, int g, int64_t j) const {
    return base + b * d.kv_batch_stride + j * d.kv_stride + int64_t(g) * d.head_dim;
  }

  // dst[r] = alpha * src row (b, t, h) for the stacked rows of block qb.
  void pack(const float* src, int64_t b, int g, int64_t qb, float alpha, float* dst) const {
    const int64_t n = rows(qb), hd = d.head_dim;
    for (int64_t r = 0; r < plan.group * n; ++r) {
      const float* row = src + (b * d.seq_len + t_of(qb, r)) * d.q_stride + int64_t(head_of(g, qb, r)) * hd;
      if (alpha == 1.0f) std::memcpy(dst + r * hd, row, hd * sizeof(float));
      else for (int64_t i = 0; i < hd; ++i) dst[r * hd + i] = alpha * row[i];
    }
  }

  // Scores of tile t for the packed queries: S = Qs K^T, then the ALiBi term and the mask.
  void scores(const Tile& t, int64_t b, int g, const float* k, const float* qs, float* s,
              std::vector<KeySpan>& spans) const {
    scores_at(t, g, kv(k, b, g, t.lo), d.kv_stride, qs, s, spans);
  }
  // The same with the tile's key rows at kt (row stride ld).
  void scores_at(const Tile& t, int g, const float* kt, int64_t ld, const float* qs, float* s,
                 std::vector<KeySpan>& spans) const {
    const int64_t R = plan.group * rows(t.qb), cols = t.hi - t.lo;
    gemm(false, true, R, cols, d.head_dim, 1.0f, qs, d.head_dim, kt, ld, 0.0f, s, cols);
    bias_and_mask(t, g, s, spans);
  }
  // Adds the ALiBi term to the raw scores s [R, cols] of tile t and hides masked keys.
  void bias_and_mask(const Tile& t, int g, float* s, std::vector<KeySpan>& spans) const {
    const int64_t R = plan.group * rows(t.qb), cols = t.hi - t.lo;
    if (!spec.alibi_slopes && !t.masked) return;
    for (int64_t r = 0; r < R; ++r) {
      float* row = s + r * cols;
      const int64_t tq = t_of(t.qb, r);
      const int64_t qp = plan.q_at.empty() ? d.q_pos0 + tq : plan.q_at[tq];
      if (spec.alibi_slopes && d.k_pos) {  // gathered rows: their own positions
        const float slope = spec.alibi_slopes[head_of(g, t.qb, r)];
        for (int64_t j = 0; j < cols; ++j) row[j] -= slope * static_cast<float>(d.q_pos[tq] - d.k_pos[t.lo + j]);
      } else if (spec.alibi_slopes) {
        const float slope = spec.alibi_slopes[head_of(g, t.qb, r)];
        // -slope * (qp - k) for k = lo + j; row-invariant: over the row's own keys only (how
        // the ramp rounds a column depends on the length it is given).
        const int64_t n = plan.row_extent ? std::clamp<int64_t>(qp + 1 - t.lo, 0, cols) : cols;
        kernels::vec_add_ramp(row, slope * static_cast<float>(t.lo - qp), slope, n);
      }
      if (t.masked) {
        spans.clear();
        spec.mask->row_spans(qp, t.lo, t.hi, &spans);
        int64_t j = t.lo;
        for (const KeySpan& sp : spans) {
          std::fill(row + (j - t.lo), row + (sp.lo - t.lo), -INFINITY);
          j = sp.hi;
        }
        std::fill(row + (j - t.lo), row + cols, -INFINITY);
      }
    }
  }

  // P = exp(S - lse) in place (rows with lse = -inf see nothing: zeros). The exp as in the
  // forward (exp_sum).
  void probs_from_lse(float* s, int64_t R, int64_t cols, const float* lse) const {
    for (int64_t r = 0; r < R; ++r) {
      if (lse[r] == -INFINITY) std::fill(s + r * cols, s + (r + 1) * cols, 0.0f);
      else exp_sum(s + r * cols, lse[r], cols);
    }
  }
  // exp(x - sub) in place, returning the sum, for x <= sub. Passes without a KV cache (training,
  // encoders: TileSizes::fp32_kernels) take the shorter polynomial; passes through a cache keep
  // vec_exp_sum, whose rounding the decode's agreement with llama.cpp was measured on.
  float exp_sum(float* x, float sub, int64_t n) const {
    return exp_np ? kernels::vec_exp_sum_nonpositive(x, sub, n) : kernels::vec_exp_sum(x, sub, n);
  }

  // Per-row lse and D = rowsum(dO * O) of the stacked block, from the [batch, heads, seq] arrays.
  void gather_rows(const float* src, int64_t b, int g, int64_t qb, float* dst) const {
    for (int64_t r = 0; r < plan.group * rows(qb); ++r)
      dst[r] = src[(b * d.heads + head_of(g, qb, r)) * d.seq_len + t_of(qb, r)];
  }
};

void check_dims(const AttentionDims& d, const AttentionSpec& spec) {
  CHECK(d.heads > 0 && d.kv_heads > 0 && d.heads % d.kv_heads == 0 && d.head_dim > 0);
  CHECK_MSG(spec.mask && spec.mask->kv_len() == d.kv_len, "attention: mask built for another kv_len");
  CHECK(d.q_stride >= int64_t(d.heads) * d.head_dim && d.kv_stride >= int64_t(d.kv_heads) * d.head_dim);
}

// ---------------------------------------------------------------------------------------------
// Forward: plan_forward says which work items exist (and whether key tiles are split among
// them), run_forward_task runs one, merge_splits combines the parts of a split one.

// K and V of the forward as its tiles read them: contiguous rows or a paged cache, in the view's
// element type (see KvView).
struct KvTiles {
  const AttentionDims& d;
  KvView k, v;
  bool paged;
  KvTiles(const AttentionDims& dims, KvView kview, KvView vview)
      : d(dims), k(kview), v(vview), paged(kview.pages != nullptr) {}

  // Head g of row j of K or V.
  const uint8_t* row_at(const KvView& view, int64_t b, int g, int64_t j) const {
    if (paged) return paged_row(view.pages, view.page_shift, view.head_stride, view.row_bytes, g, j);
    return static_cast<const uint8_t*>(view.data) +
           quant::row_bytes(view.type, b * d.kv_batch_stride + j * d.kv_stride + int64_t(g) * d.head_dim);
  }
  // Bytes from one row of a head to the next.
  int64_t row_step(const KvView& view) const { return paged ? view.row_bytes : quant::row_bytes(view.type, d.kv_stride); }
  // The K or V rows of tile t as fp32: in place for fp32 (*ld: row stride in floats), else
  // converted into `buf` [cols, head_dim] (row stride head_dim).
  const float* tile_rows(const KvView& view, int64_t b, int g, const Tile& t, float* buf, int64_t* ld) const {
    const int64_t hd = d.head_dim;
    const uint8_t* src = row_at(view, b, g, t.lo);
    const int64_t step = row_step(view);
    if (view.type == kF32 && step % sizeof(float) == 0) {
      *ld = step / int64_t(sizeof(float));
      return reinterpret_cast<const float*>(src);
    }
    for (int64_t j = 0; j < t.hi - t.lo; ++j) {
      if (view.type == kF16)
        quant::fp16_to_fp32_row(reinterpret_cast<const uint16_t*>(src + j * step), buf + j * hd, hd);
      else
        CHECK(quant::dequantize_row(view.type, src + j * step, buf + j * hd, hd).ok());
    }
    *ld = hd;
    return buf;
  }
};

// The forward's work items. A group task is one (batch, kv head, query block); decoding and
// short chunks over a long cache have few of them (one per KV head when decoding, a single one
// under MQA), so their key tiles are then split into `splits` parts run as separate tasks, each
// keeping its own running max, sum and output, merged afterwards (the split-K of flash
// decoding). The split depends only on the shapes, so results do not depend on the thread count.
struct ForwardWork {
  int64_t n_groups = 0, splits = 1;
  std::vector<int64_t> n_tiles;    // [n_qb] key tiles each query block visits
  std::vector<int64_t> qb_splits;  // row-invariant: [n_qb] parts of each block (splits: the most)
  int64_t r_max = 0;             // stacked rows of the tallest query block
  int64_t part_floats = 0;       // one split's partial result: m [r_max], l [r_max], acc [r_max, head_dim]
  int64_t tasks() const { return n_groups * splits; }
};

// One work item: stacked query block qb of kv head g in batch b, over its key tiles
// [tile_lo, tile_hi) (all of them unless split).
struct ForwardTask {
  int64_t b = 0, qb = 0, tile_lo = 0, tile_hi = 0;
  int g = 0;
};

ForwardWork plan_forward(const AttentionDims& d, const Plan& plan) {
  ForwardWork w;
  w.n_groups = d.batch * d.kv_heads * plan.n_qb;
  w.n_tiles.assign(plan.n_qb, 0);
  int64_t min_tiles = INT64_MAX;
  for (int64_t qb = 0; qb < plan.n_qb; ++qb) {
    plan.for_tiles(qb, [&](const Tile&) { ++w.n_tiles[qb]; });
    min_tiles = std::min(min_tiles, w.n_tiles[qb]);
  }
  if (plan.invariant) {
    // Each block is split as a decoding step of one of its rows would be (its rows' tiles, a
    // whole call's worth of tasks for batch * kv_heads groups). Blocks split into fewer parts
    // than the most leave the rest empty: merged, an empty part adds exact zeros.
    const int64_t groups = d.batch * d.kv_heads;
    const int64_t want = groups < kMinForwardTasks ? (kMinForwardTasks + groups - 1) / groups : 1;
    w.qb_splits.resize(plan.n_qb);
    for (int64_t qb = 0; qb < plan.n_qb; ++qb) {
      w.qb_splits[qb] = std::max<int64_t>(1, std::min(want, w.n_tiles[qb] / 2));
      w.splits = std::max(w.splits, w.qb_splits[qb]);
    }
  } else if (w.n_groups < kMinForwardTasks) {
    w.splits = std::min((kMinForwardTasks + w.n_groups - 1) / w.n_groups, min_tiles / 2);
  }
  w.splits = std::max<int64_t>(w.splits, 1);
  w.r_max = plan.group * plan.max_rows();
  w.part_floats = w.r_max * (d.head_dim + 2);
  return w;
}

// (b, g, qb) of group task `group_task`: late (heavier causal) query blocks first.
ForwardTask group_of(const AttentionDims& d, const Plan& plan, int64_t group_task) {
  ForwardTask t;
  t.qb = plan.n_qb - 1 - group_task % plan.n_qb;
  const int64_t bg = group_task / plan.n_qb;
  t.b = bg / d.kv_heads;
  t.g = static_cast<int>(bg % d.kv_heads);
  return t;
}

ForwardTask forward_task(const AttentionDims& d, const Plan& plan, const ForwardWork& work, int64_t task) {
  const int64_t split = task % work.splits;
  ForwardTask t = group_of(d, plan, task / work.splits);
  const int64_t parts = work.qb_splits.empty() ? work.splits : work.qb_splits[t.qb];
  if (split >= parts) return t;  // an empty part (tiles [0, 0))
  t.tile_lo = work.n_tiles[t.qb] * split / parts;
  t.tile_hi = work.n_tiles[t.qb] * (split + 1) / parts;
  return t;
}

// Scores of `tile` into w.s [R, cols]. Short stacked blocks (`direct`) read the K rows in place
// in their element type; taller ones take them as fp32 (converted into w.acc2 if need be).
void forward_scores(const Ctx& c, const KvTiles& kv, const ForwardTask& t, const Tile& tile, bool direct,
                    Scratch& w) {
  const int64_t R = c.plan.group * c.rows(t.qb), cols = tile.hi - tile.lo;
  if (direct) {
    // Decoding is a stream through the cache, and the hardware prefetcher alone leaves the
    // cores waiting on it: the scores ask for this tile's V rows as they go, a few lines per
    // key (on a paged cache, where each head's tile is one contiguous run).
    kernels::Prefetch vnext;
    if (kv.paged) vnext = {kv.row_at(kv.v, t.b, t.g, tile.lo), cols * kv.row_step(kv.v)};
    kernels::kv_scores(kv.k.type, kv.row_at(kv.k, t.b, t.g, tile.lo), kv.row_step(kv.k), cols, w.qs, R,
                       c.d.head_dim, w.s, cols, vnext);
    c.bias_and_mask(tile, t.g, w.s, w.spans);
  } else {
    int64_t ld = 0;
    const float* kt = kv.tile_rows(kv.k, t.b, t.g, tile, w.acc2, &ld);
    c.scores_at(tile, t.g, kt, ld, w.qs, w.s, w.spans);
  }
}

// Online softmax over one tile's scores s [R, cols]: per row the running max m and sum l are
// updated, acc [R, hd] rescaled to the new max, and s overwritten with exp(s - m).
// ext (may be null): row r's scores past ext[r] are all masked (a causal row's keys after its
// position) and are left out of its max and sum (set to 0), so the row's arithmetic does not
// depend on the tile's width.
void online_softmax(const Ctx& c, float* s, int64_t R, int64_t cols, int64_t hd, float* m, float* l, float* acc,
                    const int64_t* ext = nullptr) {
  for (int64_t r = 0; r < R; ++r) {
    float* row = s + r * cols;
    const int64_t n = ext ? std::clamp<int64_t>(ext[r], 0, cols) : cols;  // the row's columns
    std::fill(row + n, row + cols, 0.0f);
    const float m_new = std::max(m[r], n > 0 ? kernels::vec_max(row, n) : -INFINITY);
    if (m_new == -INFINITY) {  // nothing visible yet in this row
      std::fill(row, row + n, 0.0f);
      continue;
    }
    const float alpha = m[r] == -INFINITY ? 0.0f : std::exp(m[r] - m_new);
    const float sum = c.exp_sum(row, m_new, n);
    l[r] = l[r] * alpha + sum;
    if (alpha != 1.0f) kernels::vec_scale(acc + r * hd, alpha, hd);
    m[r] = m_new;
  }
}

// w.acc += P V for `tile`, P = w.s. `more` says whether the task has a next tile (a prefetch
// hint for the direct path).
void forward_accumulate(const Ctx& c, const KvTiles& kv, const ForwardTask& t, const Tile& tile, bool direct,
                        bool more, Scratch& w) {
  const int64_t R = c.plan.group * c.rows(t.qb), cols = tile.hi - tile.lo, hd = c.d.head_dim;
  if (direct) {
    // ... and the values ask for the K rows from the end of this tile to the end of their
    // page: the next tile's, when the visible keys run on (a hint only where they do not).
    kernels::Prefetch knext;
    if (kv.paged && more && tile.hi < c.d.kv_len) {
      const int64_t page = int64_t{1} << kv.k.page_shift;
      const int64_t n = std::min(c.d.kv_len, (tile.hi / page + 1) * page) - tile.hi;
      knext = {kv.row_at(kv.k, t.b, t.g, tile.hi), n * kv.row_step(kv.k)};
    }
    kernels::kv_accumulate(kv.v.type, kv.row_at(kv.v, t.b, t.g, tile.lo), kv.row_step(kv.v), cols, w.s, cols, R, hd,
                           w.acc, knext);
  } else {
    int64_t ld = 0;
    const float* vt = kv.tile_rows(kv.v, t.b, t.g, tile, w.acc2, &ld);
    if (c.fp32_k && ld != hd) {  // tile_gemm reads B in place: contiguous rows stream better
      for (int64_t j = 0; j < cols; ++j) std::memcpy(w.acc2 + j * hd, vt + j * ld, hd * sizeof(float));
      vt = w.acc2;
      ld = hd;
    }
    c.gemm(false, false, R, hd, cols, 1.0f, w.s, cols, vt, ld, 1.0f, w.acc, hd);
  }
}

// One work item: online softmax over its key tiles, leaving the running max, sum and
// unnormalised output of its stacked rows in w.m [R], w.l [R], w.acc [R, hd].
void run_forward_task(const Ctx& c, const KvTiles& kv, const ForwardTask& t, const float* q, Scratch& w) {
  const int64_t R = c.plan.group * c.rows(t.qb), hd = c.d.head_dim;
  // Stacked blocks of at most kDirectRows rows read the K/V tiles in place.
  const bool direct = R <= kDirectRows || c.plan.invariant;
  c.pack(q, t.b, t.g, t.qb, c.scale, w.qs);
  std::fill(w.m, w.m + R, -INFINITY);
  std::fill(w.l, w.l + R, 0.0f);
  std::fill(w.acc, w.acc + R * hd, 0.0f);
  int64_t tile_index = 0;
  c.plan.for_tiles(t.qb, [&](const Tile& tile) {
    const int64_t this_tile = tile_index++;
    if (this_tile < t.tile_lo || this_tile >= t.tile_hi) return;
    forward_scores(c, kv, t, tile, direct, w);
    if (c.plan.row_extent)
      for (int64_t r = 0; r < R; ++r) w.ext[r] = c.d.q_pos0 + c.t_of(t.qb, r) + 1 - tile.lo;
    online_softmax(c, w.s, R, tile.hi - tile.lo, hd, w.m, w.l, w.acc, c.plan.row_extent ? w.ext.data() : nullptr);
    forward_accumulate(c, kv, t, tile, direct, this_tile + 1 < t.tile_hi, w);
  });
}

// Writes the normalised output and lse of the stacked rows of block qb of kv head g, batch b.
void write_output(const Ctx& c, int64_t b, int g, int64_t qb, const float* m, const float* l, const float* acc,
                  float* out, float* lse) {
  const AttentionDims& d = c.d;
  const int64_t hd = d.head_dim;
  for (int64_t r = 0; r < c.plan.group * c.rows(qb); ++r) {
    const int h = c.head_of(g, qb, r);
    const int64_t t = c.t_of(qb, r);
    float* o = out + (b * d.seq_len + t) * d.q_stride + int64_t(h) * hd;
    const float inv = l[r] > 0 ? 1.0f / l[r] : 0.0f;
    for (int64_t i = 0; i < hd; ++i) o[i] = acc[r * hd + i] * inv;
    if (lse) lse[(b * d.heads + h) * d.seq_len + t] = l[r] > 0 ? m[r] + std::log(l[r]) : -INFINITY;
  }
}

// Keeps task `task`'s partial result (w.m, w.l, w.acc of its R rows) in parts
// [tasks, part_floats], for merge_splits.
void save_partial(const ForwardWork& work, int64_t task, int64_t R, int64_t hd, const Scratch& w, float* parts) {
  float* part = parts + task * work.part_floats;
  std::copy(w.m, w.m + R, part);
  std::copy(w.l, w.l + R, part + work.r_max);
  std::copy(w.acc, w.acc + R * hd, part + 2 * work.r_max);
}

// Merges the splits of each group task, in split order: m = max m_s, l = sum l_s e^(m_s - m),
// acc = sum acc_s e^(m_s - m); then writes the output as an unsplit task would.
void merge_splits(ThreadPool& pool, const Ctx& c, const ForwardWork& work, const float* parts, float* out,
                  float* lse) {
  const int64_t hd = c.d.head_dim, r_max = work.r_max, splits = work.splits, part_floats = work.part_floats;
  pool.parallel_range(work.n_groups, [&](int64_t t0, int64_t t1, int) {
    std::vector<float> m(r_max), l(r_max), acc(r_max * hd);
    for (int64_t group_task = t0; group_task < t1; ++group_task) {
      const ForwardTask t = group_of(c.d, c.plan, group_task);
      const int64_t R = c.plan.group * c.rows(t.qb);
      const float* first = parts + group_task * splits * part_floats;
      for (int64_t r = 0; r < R; ++r) {
        float mx = -INFINITY;
        for (int64_t sp = 0; sp < splits; ++sp) mx = std::max(mx, first[sp * part_floats + r]);
        m[r] = mx;
        l[r] = 0.0f;
        float* a = acc.data() + r * hd;
        std::fill(a, a + hd, 0.0f);
        if (mx == -INFINITY) continue;
        for (int64_t sp = 0; sp < splits; ++sp) {
          const float* part = first + sp * part_floats;
          if (part[r] == -INFINITY) continue;
          const float scale = std::exp(part[r] - mx);
          l[r] += part[r_max + r] * scale;
          const float* pa = part + 2 * r_max + r * hd;
          for (int64_t i = 0; i < hd; ++i) a[i] += pa[i] * scale;
        }
      }
      write_output(c, t.b, t.g, t.qb, m.data(), l.data(), acc.data(), out, lse);
    }
  });
}

}  // namespace

void tiled_forward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                   const float* k, const float* v, float* out, float* lse, TileSizes ts) {
  tiled_forward_kv(pool, d, spec, q, KvView{k, 0}, KvView{v, 0}, out, lse, ts);
}

void tiled_forward_kv(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q, KvView kview,
                      KvView vview, float* out, float* lse, TileSizes ts) {
  check_dims(d, spec);
  const bool paged = kview.pages != nullptr;
  CHECK(paged == (vview.pages != nullptr));
  CHECK(!paged || (d.batch == 1 && kview.page_shift == vview.page_shift && kview.page_shift < 62));
  for (const KvView* v : {&kview, &vview})
    CHECK(v->type == kF32 || v->type == kF16 ||
          (paged && v->type == kQ8_0 && d.head_dim % quant::kQK == 0));
  if (d.seq_len == 0) return;
  const Plan plan = make_plan(d, *spec.mask, ts, paged ? int64_t{1} << kview.page_shift : INT64_MAX);
  const Ctx c(d, spec, plan, ts);
  const KvTiles kv(d, kview, vview);
  const ForwardWork work = plan_forward(d, plan);
  ScratchSet scratch(pool.threads(), work.r_max, plan.bc, d.head_dim);
  std::vector<float> parts(work.splits > 1 ? static_cast<size_t>(work.tasks() * work.part_floats) : 0);
  pool.parallel_for_dynamic(work.tasks(), [&](int64_t task, int thread) {
    Scratch& w = scratch.get(thread);
    const ForwardTask t = forward_task(d, plan, work, task);
    run_forward_task(c, kv, t, q, w);
    if (work.splits == 1) write_output(c, t.b, t.g, t.qb, w.m, w.l, w.acc, out, lse);
    else save_partial(work, task, plan.group * c.rows(t.qb), d.head_dim, w, parts.data());
  });
  if (work.splits > 1) merge_splits(pool, c, work, parts.data(), out, lse);
}

void tiled_backward(ThreadPool& pool, const AttentionDims& d, const AttentionSpec& spec, const float* q,
                    const float* k, const float* v, const float* out, const float* lse, const float* dout,
                    float* dq, float* dk, float* dv, TileSizes ts) {
  check_dims(d, spec);
  if (d.seq_len == 0) return;
  const Plan plan = make_plan(d, *spec.mask, ts);
  const Ctx c(d, spec, plan, ts);
  const int64_t hd = d.head_dim;
  ScratchSet scratch(pool.threads(), plan.group * plan.max_rows(), plan.bc, hd);
  // D = rowsum(dO * O), [batch, heads, seq_len].
  std::vector<float> Dsum(d.batch * d.heads * d.seq_len);
  pool.parallel_range(d.batch * d.seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t row = r0; row < r1; ++row)
      for (int h = 0; h < d.heads; ++h) {
        const int64_t off = row * d.q_stride + int64_t(h) * hd;
        Dsum[((row / d.seq_len) * d.heads + h) * d.seq_len + row % d.seq_len] = kernels::vec_dot(dout + off, out + off, hd);
      }
  });

  // dQ is zeroed, then each tile adds its share to its query block's rows in a fixed order (see
  // the header comment), so its sums do not depend on which thread ran which tile.
  pool.parallel_range(d.batch * d.seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t row = r0; row < r1; ++row)
      std::fill(dq + row * d.q_stride, dq + row * d.q_stride + int64_t(d.heads) * hd, 0.0f);
  });
  // A tile's rank among its query block's tiles (for_tiles order, which is the order in which
  // the key-column tasks below reach them): tile0[i] tiles come before span i of the block.
  std::vector<int64_t> tile0(plan.spans.size());
  for (int64_t qb = 0; qb < plan.n_qb; ++qb)
    for (int64_t i = plan.span_begin[qb], n = 0; i < plan.span_begin[qb + 1]; ++i) {
      tile0[i] = n;
      n += (plan.spans[i].hi - 1) / plan.bc - plan.spans[i].lo / plan.bc + 1;
    }
  auto rank_of = [&](const Tile& t) {
    const KeySpan* first = plan.spans.data() + plan.span_begin[t.qb];
    const KeySpan* last = plan.spans.data() + plan.span_begin[t.qb + 1];
    const KeySpan* sp = std::upper_bound(first, last, t.lo, [](int64_t lo, const KeySpan& x) { return lo < x.lo; }) - 1;
    return tile0[sp - plan.spans.data()] + t.lo / plan.bc - sp->lo / plan.bc;
  };
  // turn[(b, g, qb)]: how many tiles have added their share to block qb's dQ rows.
  std::vector<std::atomic<int64_t>> turn(static_cast<size_t>(d.batch * d.kv_heads * plan.n_qb));

  // One task per key column cell, visiting the query blocks that see it.
  pool.parallel_for_dynamic(d.batch * d.kv_heads * plan.n_cells, [&](int64_t task, int thread) {
    Scratch& w = scratch.get(thread);
    const int64_t cell = task % plan.n_cells;
    const int64_t b = task / plan.n_cells / d.kv_heads;
    const int g = static_cast<int>(task / plan.n_cells % d.kv_heads);
    const int64_t c_lo = cell * plan.bc, c_hi = std::min(d.kv_len, c_lo + plan.bc);
    float* dK = w.acc;
    float* dV = w.acc2;
    std::fill(dK, dK + (c_hi - c_lo) * hd, 0.0f);
    std::fill(dV, dV + (c_hi - c_lo) * hd, 0.0f);
    int64_t packed = -1;
    auto tile = [&](const Tile& t) {
      const int64_t cols = t.hi - t.lo, R = plan.group * c.rows(t.qb);
      if (packed != t.qb) {
        c.pack(q, b, g, t.qb, c.scale, w.qs);
        c.pack(dout, b, g, t.qb, 1.0f, w.dos);
        c.gather_rows(lse, b, g, t.qb, w.lse);
        c.gather_rows(Dsum.data(), b, g, t.qb, w.D);
        packed = t.qb;
      }
      c.scores(t, b, g, k, w.qs, w.s, w.spans);
      c.probs_from_lse(w.s, R, cols, w.lse);
      float* dVt = dV + (t.lo - c_lo) * hd;
      float* dKt = dK + (t.lo - c_lo) * hd;
      c.gemm(true, false, cols, hd, R, 1.0f, w.s, cols, w.dos, hd, 1.0f, dVt, hd);
      c.gemm(false, true, R, cols, hd, 1.0f, w.dos, hd, c.kv(v, b, g, t.lo), d.kv_stride, 0.0f, w.dp,
                           cols);
      for (int64_t r = 0; r < R; ++r) kernels::vec_softmax_backward(w.s + r * cols, w.dp + r * cols, w.D[r], cols);
      c.gemm(true, false, cols, hd, R, 1.0f, w.dp, cols, w.qs, hd, 1.0f, dKt, hd);
      c.gemm(false, false, R, hd, cols, c.scale, w.dp, cols, c.kv(k, b, g, t.lo), d.kv_stride, 0.0f, w.dq, hd);
      // The block's earlier tiles belong to earlier cells (or come earlier in this one), whose
      // tasks were taken before this one and are running or done: the wait always ends.
      const int64_t rank = rank_of(t);
      std::atomic<int64_t>& tn = turn[(b * d.kv_heads + g) * plan.n_qb + t.qb];
      while (tn.load(std::memory_order_acquire) != rank) std::this_thread::yield();
      for (int64_t r = 0; r < R; ++r)
        kernels::vec_axpy(1.0f, w.dq + r * hd,
                          dq + (b * d.seq_len + c.t_of(t.qb, r)) * d.q_stride + int64_t(c.head_of(g, t.qb, r)) * hd, hd);
      tn.store(rank + 1, std::memory_order_release);
    };
    for (int64_t ri = plan.cell_begin[cell]; ri < plan.cell_begin[cell + 1]; ++ri) {
      const Plan::Run& run = plan.runs[ri];
      for (int64_t qb = run.qb_lo; qb < run.qb_hi; ++qb) tile(Tile{qb, run.lo, run.hi, run.masked});
    }
    if (plan.cell_begin[cell] == plan.cell_begin[cell + 1]) return;
    for (int64_t j = c_lo; j < c_hi; ++j) {
      kernels::vec_axpy(1.0f, dK + (j - c_lo) * hd, c.kv(dk, b, g, j), hd);
      kernels::vec_axpy(1.0f, dV + (j - c_lo) * hd, c.kv(dv, b, g, j), hd);
    }
  });
}

}  // namespace longctx::attention
