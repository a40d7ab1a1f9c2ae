// Block kind "routed_attention" (CoLT5's conditional attention, arXiv 2303.09752), causal for a
// decoder:
//   x_out = x_in + A_light(h) + gate_q * A_heavy(h_q, gate_kv * h_kv),   h = norm(x_in)
// - light branch: light_heads heads of local attention (a sliding window of `window` keys) over
//   every token, with its own projections (attn_light_{q,k,v,output});
// - heavy branch: the layer's other heads, full causal attention from the routed queries to the
//   routed key/values only, on the tiled engine over gathered rows (attention::AttentionDims::
//   q_pos / k_pos): each row keeps its position, so RoPE and ALiBi stay right. The key/value
//   rows' input is scaled by their router's gate and the output rows by the query router's
//   gate: both routers get their gradient from the task loss. Its tensors carry the dense
//   block's names (attn_q, attn_k, attn_v, attn_output).
// - routers (layers/router.h, the causal threshold rule): attn_router_q picks the queries
//   (route_q, default 1/16), attn_router_kv the key/values (route_kv, default 1/8).
// Arguments: window=N (default 128), light_heads=N (default heads / 4, in whole kv groups; 0: no
// light branch),
// route_q=F, route_kv=F, rule=threshold|topk. light_heads=0,route_q=1,route_kv=1 is the dense
// attention block exactly.
// rule=topk is the paper's encoder form (a layer with the full pattern, no output head): each
// router takes the top round(F seq_len) rows of every sequence (layers::route_topk, no
// threshold tensors), the heavy queries see every routed key/value of their sequence, and the
// light heads run LongT5's block-local attention (blocks of `window` tokens, each seeing its own
// block and both neighbours). No KV cache: encoders run whole texts.
// Grouped-query layers keep their kv_heads in the heavy branch and give the light branch
// light_heads / (heads / kv_heads); multi-query layers give each branch one kv head.
//
// Through the KV cache the block keeps two slots: the light branch's window ring, and a compact
// slot (kvcache::KvSlot::compact) holding only the routed key/value rows with their positions, so
// the heavy cache grows with the routed fraction, not the context.
#pragma once
#include <memory>

#include "layers/block.h"

namespace longctx::layers {

Expected<std::unique_ptr<Block>> make_routed_attention_block(const BlockEnv& env);

}  // namespace longctx::layers
