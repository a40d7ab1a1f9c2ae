// Block kind "attention" (no arguments): pre-norm self-attention,
//   x_out = x_in + Wo . attend(rope(Wq h), rope(Wk h), Wv h),  h = norm(x_in),
// with its layer's heads, kv_heads (MHA, GQA and MQA alike: K/V are never expanded), head_dim and
// pattern, RoPE or an ALiBi score bias as the settings say. Shapes: x [batch * seq_len,
// model_dim]; q [.., heads * head_dim]; k, v [.., kv_heads * head_dim].
// One code path for training and inference: with a cache slot (batch 1) the new keys/values are
// written into it at pos0 (kvcache::write_rows) and the queries attend over its rows
// [first_row, pos0 + seq_len); without one they attend over the batch's own keys.
#pragma once
#include <memory>

#include "layers/block.h"

namespace longctx::layers {

Expected<std::unique_ptr<Block>> make_attention_block(const BlockEnv& env);

}  // namespace longctx::layers
