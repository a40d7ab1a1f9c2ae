// Ring attention (sequence parallelism): one sequence too long for one machine is split over
// the ranks of a group. Each rank holds its share of the queries, keys and values; the key /
// value shares travel around the ring of ranks, and each rank runs the tiled attention engine
// (attention/attention.h) of its queries against the share it holds while the next share is
// already on its way (a transfer thread), then merges the partial results exactly through their
// log-sum-exps. The backward pass sends the shares around again, with their dK / dV
// accumulators, which arrive home after one more hop.
//
// Causal load balance (zig-zag): the sequence is cut into 2N chunks of equal length; rank r
// holds chunks r and 2N-1-r, so every rank has as many visible (query, key) pairs as any other.
// A rank's local rows are its two chunks in that order.
//
// Patterns: causal and sliding windows, with or without ALiBi (their masks and biases depend on
// the distance between positions only, so a chunk pair runs as one call with the query chunk
// placed at its distance from the key chunk). RoPE is applied to q and k at their global
// positions (RingLayout::position) before these calls.
#pragma once
#include <cstdint>

#include "attention/attention.h"
#include "attention/pattern.h"
#include "core/status.h"
#include "core/thread_pool.h"
#include "dist/comm.h"

namespace longctx::dist {

struct RingLayout {
  int64_t total = 0;  // sequence length, a multiple of 2 * ranks
  int ranks = 1, rank = 0;
  int64_t chunk() const { return total / (2 * ranks); }
  int64_t local_rows() const { return 2 * chunk(); }
  // Global position of the first row of rank `owner`'s chunk `which` (0 or 1).
  int64_t chunk_start(int owner, int which) const {
    return (which == 0 ? owner : 2 * ranks - 1 - owner) * chunk();
  }
  // Global position of local row t of this rank.
  int64_t position(int64_t t) const { return chunk_start(rank, t < chunk() ? 0 : 1) + t % chunk(); }
};

// The pattern, length and rank count ring attention can run: errors name what does not fit.
Status check_ring(const attention::Pattern& pattern, int64_t total, int ranks);

struct RingSpec {
  attention::Pattern pattern = attention::Causal{};
  const float* alibi_slopes = nullptr;  // [heads] or null
  float scale = 0.0f;                   // 0: 1 / sqrt(head_dim)
  attention::TileSizes tiles;
};

struct RingDims {
  int heads = 0, kv_heads = 0, head_dim = 0;
};

// Sequence parallelism of a training pass (layers::LayerContext::seq_parallel): every rank holds
// its zig-zag share of each sequence of `total` positions, and attention runs as a ring.
struct SeqParallel {
  Group* group = nullptr;
  int64_t total = 0;
  RingLayout layout() const { return RingLayout{total, group->size(), group->rank()}; }
};

struct RingStats {
  int64_t bytes_sent = 0;  // by this rank
  double compute_s = 0;    // tiled attention calls
  double wait_s = 0;       // waiting for a transfer after the compute it overlapped
};

// Totals over every ring call of this process (train --json reports them per step).
RingStats ring_totals();

// Local rows (RingLayout::local_rows): q, out [rows, heads * head_dim]; k, v [rows, kv_heads *
// head_dim]; lse [2, heads, chunk] (each local chunk's log-sum-exps, as tiled_forward lays out a
// batch of two). out and lse are overwritten. Every rank of the group calls it together.
void ring_forward(Group& g, ThreadPool& pool, const RingLayout& layout, const RingDims& d, const RingSpec& spec,
                  const float* q, const float* k, const float* v, float* out, float* lse, RingStats* stats = nullptr);

// Needs the forward's out and lse. dq is overwritten; dk and dv are accumulated (callers zero
// them), as tiled_backward does.
void ring_backward(Group& g, ThreadPool& pool, const RingLayout& layout, const RingDims& d, const RingSpec& spec,
                   const float* q, const float* k, const float* v, const float* out, const float* lse,
                   const float* dout, float* dq, float* dk, float* dv, RingStats* stats = nullptr);

}  // namespace longctx::dist
