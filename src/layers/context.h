// What every block's forward/backward needs besides its weights: the model-wide settings, the
// thread pool, the activation arena and the RoPE tables.
#pragma once
#include <span>

#include "core/arena.h"
#include "core/thread_pool.h"
#include "dist/ring_attention.h"
#include "kernels/gemm_bf16.h"
#include "kernels/qmatmul.h"
#include "layers/settings.h"
#include "position/rope.h"

namespace longctx::layers {

// A low-rank update of a matrix W [out, in]: y += scale * (x A^T) B^T with A [rank, in] and
// B [out, rank] (LoRA). ga / gb: where their gradients accumulate (null: frozen, or inference).
struct LoraTerm {
  const float* a = nullptr;
  const float* b = nullptr;
  float* ga = nullptr;
  float* gb = nullptr;
  int64_t rank = 0;
  float scale = 1.0f;
  // Training (LayerContext::dropout_seed set): dropout with this probability on the branch's
  // input x, the mask drawn from the pass's seed and `id` (one per matrix of the model).
  float dropout = 0.0f;
  uint64_t id = 0;
};

// Rows [row0, row0 + n) of a pass that go through a matrix product together, on `path`.
struct RowGroup {
  int64_t row0 = 0, n = 0;
  kernels::QPath path = kernels::QPath::kAuto;
  // Attention through a KV cache row by row (attention::TileSizes::row_invariant): with the
  // products on the integer path, a row's results then do not depend on the pass computing it.
  bool row_invariant = false;
};

struct LayerContext {
  const Settings* settings = nullptr;
  ThreadPool* pool = nullptr;
  Arena* arena = nullptr;
  const position::Rope* rope = nullptr;  // set when settings->pos == kRope
  // How linear() splits the rows of a pass (layers/linear.h); empty: all rows in one product.
  // A pass of several sequences groups their rows so each row meets the arithmetic it would
  // meet alone (model::Model::forward_batch).
  std::span<const RowGroup> row_groups;
  // The product path of a pass without row groups (model::Model::set_integer_prefill: kAmx).
  kernels::QPath path = kernels::QPath::kAuto;
  // Attention through a KV cache row by row (attention::TileSizes::row_invariant): with the
  // products on the integer path, a row's results then do not depend on the pass computing it.
  bool row_invariant = false;
  // Training: LoRA dropout masks come from this seed (0: no dropout, as in inference).
  uint64_t dropout_seed = 0;
  // Attention attribution (attention/attribution.h): with one sequence through its cache, each
  // attention block adds every key's weight, summed over the pass's rows and the heads, to
  // attribution[key position]. Null: off.
  double* attribution = nullptr;
  // fp32 matrices through kernels::gemm_bf16 (bf16 operands, fp32 sums) in linear() and its
  // backward; set only where kernels::gemm_bf16_supported().
  bool bf16 = false;
  // With bf16: packed copies of the F32 matrices read in place (they never change), made on first
  // use. Null: packed per product.
  kernels::Bf16WeightCache* bf16_weights = nullptr;
  // Routed blocks record the positions they route (layers::RouteCount::positions): how
  // training-time and decode-time routing are compared (`longctx bench routing`).
  bool route_trace = false;
  // Sequence-parallel training: a pass's seq_len rows per sequence are this rank's zig-zag share
  // of a sequence (dist::RingLayout), its attention a ring over the group. Null: off.
  const dist::SeqParallel* seq_parallel = nullptr;
};

}  // namespace longctx::layers
