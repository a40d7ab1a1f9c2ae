// The output head: the final norm of the last block's rows, then logits through the output
// matrix [vocab_size, model_dim] (the token table when tied).
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/qmatmul.h"
#include "layers/block.h"

namespace longctx::layers {

// output_norm.weight (and .bias with LayerNorm and biases) and, unless tied, output.weight.
std::vector<TensorDecl> head_tensors(const Settings& s, int64_t vocab_size, bool tied);

// logits [rows, vocab_size] = xn [rows, model_dim] W^T: through q when it has data (a matrix read
// in place), else the fp32 w.
void project_logits(const LayerContext& ctx, const float* w, const kernels::QMatrix* q, const float* xn,
                    int64_t rows, int64_t vocab_size, float* logits);

}  // namespace longctx::layers
