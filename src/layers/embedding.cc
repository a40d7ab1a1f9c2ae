#include "layers/embedding.h"

#include <cstring>

#include "kernels/vec.h"
#include "position/sinusoidal.h"

namespace longctx::layers {

void embedding_forward(const LayerContext& ctx, EmbeddingParams<const float*> p, const int32_t* tokens,
                       int64_t batch, int64_t seq_len, int64_t pos0, float* x) {
  const auto& c = *ctx.config;
  const int64_t D = c.model_dim;
  ctx.pool->parallel_range(batch * seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      std::memcpy(x + r * D, p.token + int64_t(tokens[r]) * D, D * sizeof(float));
      if (c.pos == model::PosType::kLearned)
        kernels::vec_add(x + r * D, p.position + (pos0 + r % seq_len) * D, x + r * D, D);
    }
  });
  if (c.pos == model::PosType::kSinusoidal)
    for (int64_t b = 0; b < batch; ++b) position::sinusoidal_add(x + b * seq_len * D, seq_len, D, pos0);
}

void embedding_backward(const LayerContext& ctx, EmbeddingParams<float*> g, const int32_t* tokens,
                        int64_t batch, int64_t seq_len, int64_t pos0, const float* dx) {
  const auto& c = *ctx.config;
  const int64_t D = c.model_dim;
  // Split over columns: each thread owns a slice of every gradient row, so repeated tokens
  // never race and the sum order is fixed.
  ctx.pool->parallel_range(D, [&](int64_t c0, int64_t c1, int) {
    for (int64_t r = 0; r < batch * seq_len; ++r) {
      kernels::vec_add(g.token + int64_t(tokens[r]) * D + c0, dx + r * D + c0, g.token + int64_t(tokens[r]) * D + c0,
                       c1 - c0);
      if (c.pos == model::PosType::kLearned && g.position)
        kernels::vec_add(g.position + (pos0 + r % seq_len) * D + c0, dx + r * D + c0,
                         g.position + (pos0 + r % seq_len) * D + c0, c1 - c0);
    }
  });
}

}  // namespace longctx::layers
