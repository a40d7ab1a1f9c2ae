// Block kind "routed_feed_forward" (CoLT5's conditional feed-forward, arXiv 2303.09752):
//   x_out = x_in + FF_light(h) + gate_i * FF_heavy(h_i) on the routed rows i,  h = norm(x_in),
// with the causal routing rule of layers/router.h. Arguments (key=value, comma-separated):
//   light=N     the light branch's hidden size (0: no light branch; default ff_dim / 8)
//   heavy=N     the heavy branch's hidden size (default: the layer's ff_dim)
//   route=R     the fraction of tokens routed to the heavy branch, as 1/16 or 0.0625 (default
//               1/16); route=1 routes every token with gate 1 (no router tensors): with light=0
//               that is the dense feed_forward block.
//   rule=R      threshold (default): the causal rule of layers/router.h, for decoders; topk: the
//               paper's encoder form, the top round(route * seq_len) rows of each sequence
//               (layers::route_topk), for bidirectional models only (no threshold tensor).
// Tensors: ffn_norm; the heavy branch under the dense block's names (ffn_gate, ffn_up, ffn_down,
// so a dense model's feed-forward weights load as the heavy branch); ffn_light_gate/up/down;
// ffn_router.weight [model_dim] and ffn_router.threshold [1].
// The heavy branch runs on the routed rows gathered into one product, so its cost is the routed
// fraction of the dense block's. No KV cache: decoding routes each new token as training did.
#pragma once
#include <memory>

#include "layers/block.h"

namespace longctx::layers {

Expected<std::unique_ptr<Block>> make_routed_feed_forward_block(const BlockEnv& env);

// "1/16", "0.0625" or "1": a fraction in (0, 1]; error names the text.
Expected<double> parse_fraction(const std::string& s);
// A routed block's rule= value: true for "topk" (the encoder form), false for "threshold".
Expected<bool> parse_rule(const std::string& s);

}  // namespace longctx::layers
