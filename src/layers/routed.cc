#include "layers/routed.h"

#include <algorithm>

#include "kernels/vec.h"

namespace longctx::layers {

void gather_rows(ThreadPool& pool, const float* x, int64_t dim, const std::vector<int64_t>& rows, float* out) {
  pool.parallel_range(static_cast<int64_t>(rows.size()), [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) std::copy_n(x + rows[j] * dim, dim, out + j * dim);
  });
}

void scatter_add_rows(ThreadPool& pool, const float* y, int64_t dim, const std::vector<int64_t>& rows,
                      const float* scale, float* x) {
  // Rows are distinct, so threads write disjoint rows.
  pool.parallel_range(static_cast<int64_t>(rows.size()), [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      kernels::vec_axpy(scale ? scale[j] : 1.0f, y + j * dim, x + rows[j] * dim, dim);
    }
  });
}

void gather_rows_backward(ThreadPool& pool, const float* dx, int64_t dim, const std::vector<int64_t>& rows,
                          const float* gate, const float* y, float* dy, float* dgate) {
  pool.parallel_range(static_cast<int64_t>(rows.size()), [&](int64_t j0, int64_t j1, int) {
    for (int64_t j = j0; j < j1; ++j) {
      const float* dr = dx + rows[j] * dim;
      dgate[j] = kernels::vec_dot(dr, y + j * dim, dim);
      for (int64_t k = 0; k < dim; ++k) dy[j * dim + k] = gate[j] * dr[k];
    }
  });
}

void append_positions(const Pass& pass, const std::vector<int64_t>& rows, std::vector<int64_t>* out) {
  for (int64_t row : rows) {
    int64_t pos = pass.pos0 + row % std::max<int64_t>(pass.seq_len, 1);
    for (const SeqRows& s : pass.seqs)
      if (row >= s.row0 && row < s.row0 + s.n) pos = s.pos0 + (row - s.row0);
    out->push_back(pos);
  }
}

GatheredContext::GatheredContext(const LayerContext& outer, const std::vector<int64_t>& rows) : ctx(outer) {
  if (outer.row_groups.empty()) return;
  size_t j = 0;
  for (const RowGroup& g : outer.row_groups) {
    const size_t first = j;
    while (j < rows.size() && rows[j] < g.row0 + g.n) ++j;
    const int64_t n = static_cast<int64_t>(j - first);
    if (n == 0) continue;
    // A dequantizing group is a prompt chunk whose path was picked for its row count; its routed
    // rows alone would pick theirs. The integer paths treat every row alone already.
    const kernels::QPath path = g.path == kernels::QPath::kDequant ? kernels::qmatmul_auto_path(n) : g.path;
    groups.push_back({static_cast<int64_t>(first), n, path, g.row_invariant});
  }
  ctx.row_groups = groups;
}

}  // namespace longctx::layers
