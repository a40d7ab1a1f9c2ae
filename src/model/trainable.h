// Which tensors a run trains: `train --train-only SEL` and `--freeze SEL` resolved against a
// model's tensor list. SEL is a comma-separated list of
//   all          every tensor
//   new          the layers block expansion added (ModelConfig::added_layers)
//   embeddings   token (and learned position) embeddings; with tied embeddings also the output
//   head         the final norm and the output matrix
//   norms        every norm's weight and bias
//   blocks=LIST  layers by number: 4,9,14 or ranges 0-3 (the numbers after blocks= continue it)
//   a pattern    tensor names with * wildcards: blk.*.attn_q.weight, blk.3.*
// --train-only trains what it selects; --freeze trains everything but what it selects; both:
// what --train-only selects, less what --freeze selects. Neither: every tensor.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"
#include "model/params.h"

namespace longctx::model {

// Per tensor of `layout`: whether it trains. Errors name the flag and the selector: an unknown
// selector, a layer the model does not have, `new` on a model without added layers, a pattern
// that matches nothing, or nothing left to train.
Expected<std::vector<bool>> resolve_trainable(const ModelConfig& c, const ParamLayout& layout,
                                              const std::string& train_only, const std::string& freeze);

// What trains, for people to check before a run: a summary line, then one line per fully
// trained layer (or run of them) and per other trained tensor.
std::string describe_trainable(const ParamLayout& layout);

}  // namespace longctx::model
