// The matrices of a model as the inference path reads them. A model loaded for inference keeps
// its matrices in the file's own tensor type (Q8_0, Q4_0, Q4_1, F16 or F32, zero-copy views of the
// file mapping) and runs them through kernels::qlinear_forward; training, and tensors of other
// types, use the fp32 parameters.
#pragma once
#include <cstdint>

#include "kernels/qmatmul.h"
#include "layers/context.h"

namespace longctx::layers {

// y[rows, out] = x[rows, in] W^T (+ b): through q when it is given and has data, else the fp32
// w [out, in]. With ctx.row_groups, one product per group (q: on the group's path); the groups
// must cover the rows.
void linear(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
            const kernels::QMatrix* q, const float* b, int64_t out, float* y);
// Backward of linear(): dx (+)= dy W (accumulate_dx), dW += dy^T x, db += column sums of dy
// (dw / db / dx null: not computed). Through q when it has data (a frozen matrix kept in its
// file type: dw must be null), else the fp32 w.
void linear_backward(const LayerContext& ctx, const float* x, const float* dy, int64_t rows, int64_t in,
                     const float* w, const kernels::QMatrix* q, int64_t out, float* dx, bool accumulate_dx, float* dw,
                     float* db);
// LoRA: y[rows, out] += sum over terms of scale (x A^T) B^T. Training and plain passes use
// the BLAS products; a pass whose rows must not depend on their neighbours (ctx.row_groups or
// ctx.row_invariant: serving, row-invariant inference) computes each row alone in a fixed order.
void lora_forward(const LayerContext& ctx, const std::vector<LoraTerm>& terms, const float* x, int64_t rows,
                  int64_t in, int64_t out, float* y);
// Its backward, after the matrix's own (linear_backward): dx += sum scale (dy B) A (dx may be
// null), and the terms' gradients: ga += scale (dy B)^T x, gb += scale dy^T (x A^T).
void lora_backward(const LayerContext& ctx, const std::vector<LoraTerm>& terms, const float* x, const float* dy,
                   int64_t rows, int64_t in, int64_t out, float* dx);
// y = residual + x W^T (+ b); y may alias residual, not x.
void linear_residual(const LayerContext& ctx, const float* x, int64_t rows, int64_t in, const float* w,
                     const kernels::QMatrix* q, const float* b, int64_t out, const float* residual, float* y);

}  // namespace longctx::layers
