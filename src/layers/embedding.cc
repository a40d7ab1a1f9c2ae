#include "layers/embedding.h"

#include <cmath>
#include <cstring>

#include "kernels/norm.h"
#include "kernels/vec.h"
#include "position/sinusoidal.h"
#include "quant/formats.h"

namespace longctx::layers {
namespace {
float sinusoidal_token_scale(int64_t model_dim) { return std::sqrt(static_cast<float>(model_dim)); }
}  // namespace

std::vector<TensorDecl> embedding_tensors(const Settings& s, int64_t vocab_size, int64_t ctx) {
  std::vector<TensorDecl> out = {{"token_embd.weight", {vocab_size, s.model_dim}, kF32, true, true, Init::kNormal, true}};
  if (s.pos == position::PosType::kLearned)
    out.push_back({"position_embd.weight", {ctx, s.model_dim}, kF32, true, true, Init::kNormal});
  if (s.token_types > 0)
    out.push_back({"token_types.weight", {s.token_types, s.model_dim}, kF32, true, true, Init::kNormal});
  if (s.embed_norm) {
    out.push_back({"token_embd_norm.weight", {s.model_dim}, kF32, true, false, Init::kOnes});
    if (s.bias) out.push_back({"token_embd_norm.bias", {s.model_dim}, kF32, true, false, Init::kZeros});
  }
  return out;
}

void embedding_forward(const LayerContext& ctx, EmbeddingParams<const float*> p, const kernels::QMatrix* qtoken,
                       const int32_t* tokens,
                       int64_t batch, int64_t seq_len, int64_t pos0, float* x) {
  const Settings& c = *ctx.settings;
  const int64_t D = c.model_dim;
  ctx.pool->parallel_range(batch * seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      if (qtoken && qtoken->data) {
        const auto* row = static_cast<const uint8_t*>(qtoken->data) + int64_t(tokens[r]) * qtoken->row_bytes;
        CHECK(quant::dequantize_row(qtoken->type, row, x + r * D, D).ok());
      } else {
        std::memcpy(x + r * D, p.token + int64_t(tokens[r]) * D, D * sizeof(float));
      }
      if (c.pos == position::PosType::kLearned)
        kernels::vec_add(x + r * D, p.position + (pos0 + r % seq_len) * D, x + r * D, D);
      if (p.types) kernels::vec_add(x + r * D, p.types, x + r * D, D);
    }
  });
  // (layernorm_forward normalises a row in place.)
  if (c.embed_norm)
    kernels::layernorm_forward(*ctx.pool, x, batch * seq_len, D, p.norm_w, p.norm_b, c.norm_eps, x, nullptr, nullptr);
  if (c.pos == position::PosType::kSinusoidal) {
    // Token embeddings scaled by sqrt(model_dim) (Vaswani et al. 2017, 3.4): the table's entries
    // are O(1), the embeddings start at O(0.02).
    kernels::vec_scale(x, sinusoidal_token_scale(D), batch * seq_len * D);
    for (int64_t b = 0; b < batch; ++b) position::sinusoidal_add(x + b * seq_len * D, seq_len, D, pos0);
  }
}

void embedding_backward(const LayerContext& ctx, EmbeddingParams<float*> g, const int32_t* tokens,
                        int64_t batch, int64_t seq_len, int64_t pos0, const float* dx) {
  const Settings& c = *ctx.settings;
  const int64_t D = c.model_dim;
  // Split over columns: each thread owns a slice of every gradient row, so repeated tokens
  // never race and the sum order is fixed.
  const float tscale = c.pos == position::PosType::kSinusoidal ? sinusoidal_token_scale(D) : 1.0f;
  CHECK_MSG(c.token_types == 0 && !c.embed_norm, "encoder embeddings do not train");
  if (!g.token && !g.position) return;  // both frozen
  ctx.pool->parallel_range(D, [&](int64_t c0, int64_t c1, int) {
    for (int64_t r = 0; r < batch * seq_len; ++r) {
      if (g.token) kernels::vec_axpy(tscale, dx + r * D + c0, g.token + int64_t(tokens[r]) * D + c0, c1 - c0);
      if (c.pos == position::PosType::kLearned && g.position)
        kernels::vec_add(g.position + (pos0 + r % seq_len) * D + c0, dx + r * D + c0,
                         g.position + (pos0 + r % seq_len) * D + c0, c1 - c0);
    }
  });
}

}  // namespace longctx::layers
