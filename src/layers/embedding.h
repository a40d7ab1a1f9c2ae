// Token embedding plus the positions that act on the input: learned table or sinusoidal (with
// the token embeddings scaled by sqrt(model_dim), as in the original Transformer).
// tokens: [batch, seq_len] at positions pos0 ..; x: [batch * seq_len, model_dim].
#pragma once
#include <cstdint>

#include <vector>

#include "kernels/qmatmul.h"
#include "layers/block.h"
#include "layers/context.h"

namespace longctx::layers {

// token_embd.weight [vocab_size, model_dim] (readable in place) and, for learned positions,
// position_embd.weight [ctx, model_dim]; encoders: token_types.weight [token_types, model_dim]
// and the embedding LayerNorm token_embd_norm.weight / .bias [model_dim].
std::vector<TensorDecl> embedding_tensors(const Settings& s, int64_t vocab_size, int64_t ctx);

template <class P>
struct EmbeddingParams {
  P token = nullptr;     // [vocab_size, model_dim]
  P position = nullptr;  // [ctx, model_dim], learned positions only
  P types = nullptr;     // [token_types, model_dim]: row 0 is added to every token (one segment)
  P norm_w = nullptr;    // embedding LayerNorm (Settings::embed_norm)
  P norm_b = nullptr;
};

// qtoken: the token table as a view in its file type (rows dequantized on lookup), or null / a
// view without data for the fp32 p.token.
void embedding_forward(const LayerContext& ctx, EmbeddingParams<const float*> p, const kernels::QMatrix* qtoken,
                       const int32_t* tokens,
                       int64_t batch, int64_t seq_len, int64_t pos0, float* x);
// Accumulates dx rows into the gradient rows of the tokens (and positions) that produced them.
// Not for encoders' token types and embedding norm (they are inference only).
void embedding_backward(const LayerContext& ctx, EmbeddingParams<float*> g, const int32_t* tokens,
                        int64_t batch, int64_t seq_len, int64_t pos0, const float* dx);

}  // namespace longctx::layers
