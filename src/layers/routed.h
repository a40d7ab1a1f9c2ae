// Gather/scatter of routed rows (CoLT5 blocks): the heavy branch runs on the routed rows of a
// pass packed together, and its results go back to their rows.
#pragma once
#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "layers/block.h"
#include "layers/context.h"

namespace longctx::layers {

// out[j] = x[rows[j]]; rows of width `dim`.
void gather_rows(ThreadPool& pool, const float* x, int64_t dim, const std::vector<int64_t>& rows, float* out);
// x[rows[j]] += scale[j] * y[j] (scale null: 1).
void scatter_add_rows(ThreadPool& pool, const float* y, int64_t dim, const std::vector<int64_t>& rows,
                      const float* scale, float* x);
// Backward of scatter_add_rows with scale = gate, given dx = dL/dx: dy[j] = gate[j] dx[rows[j]]
// and dgate[j] = dx[rows[j]] . y[j].
void gather_rows_backward(ThreadPool& pool, const float* dx, int64_t dim, const std::vector<int64_t>& rows,
                          const float* gate, const float* y, float* dy, float* dgate);

// The positions of rows of `pass` (without a cache: row % seq_len + pos0; through caches: the
// sequences' own), appended to out.
void append_positions(const Pass& pass, const std::vector<int64_t>& rows, std::vector<int64_t>* out);

// The context a product over gathered rows runs in: a pass split into row groups (several
// sequences served together, LayerContext::row_groups) keeps one group per sequence's routed
// rows, on the path that sequence's routed rows would take alone, so a sequence's results still
// do not depend on its neighbours.
struct GatheredContext {
  GatheredContext(const LayerContext& outer, const std::vector<int64_t>& rows);
  GatheredContext(const GatheredContext&) = delete;  // ctx.row_groups points into groups
  GatheredContext& operator=(const GatheredContext&) = delete;
  LayerContext ctx;
  std::vector<RowGroup> groups;
};

}  // namespace longctx::layers
