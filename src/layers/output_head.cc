#include "layers/output_head.h"

#include "layers/linear.h"

namespace longctx::layers {

std::vector<TensorDecl> head_tensors(const Settings& s, int64_t vocab_size, bool tied) {
  if (!s.output_head) return {};
  std::vector<TensorDecl> out = {{"output_norm.weight", {s.model_dim}, kF32, true, false, Init::kOnes}};
  if (s.norm == NormType::kLayerNorm && s.bias)
    out.push_back({"output_norm.bias", {s.model_dim}, kF32, true, false, Init::kZeros});
  if (!tied) out.push_back({"output.weight", {vocab_size, s.model_dim}, kF32, true, true, Init::kNormal, true});
  return out;
}

void project_logits(const LayerContext& ctx, const float* w, const kernels::QMatrix* q, const float* xn,
                    int64_t rows, int64_t vocab_size, float* logits) {
  linear(ctx, xn, rows, ctx.settings->model_dim, w, q, nullptr, vocab_size, logits);
}

}  // namespace longctx::layers
