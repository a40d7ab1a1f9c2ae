// Block expansion (LLaMA Pro): after each group of K layers, a copy of the group's last layer
// whose residual branches end in zeros (the attention output projection and the feed-forward
// down projection, and their biases: TensorDecl::branch_out), so the copy passes its input
// through unchanged and the expanded model computes exactly the function of the original.
// Zeroing the branch outputs rather than a norm keeps the copy's other gradients alive: the
// gradient of the zeroed projection is its input times the incoming gradient, nonzero, so the
// first step moves it off zero and the rest of the copy starts learning from there.
//
// The added layers are recorded in the config (ModelConfig::added_layers, saved as
// longctx.expansion.added_blocks), which `train --train-only new` reads.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/model.h"

namespace longctx::model {

// Where each layer of the expanded model comes from: `source` layer of the original, and
// whether it is an added copy.
struct ExpandedLayer {
  int source = 0;
  bool added = false;
};

// The layers of expanding n_layers with `add` new layers (spread evenly: one after every
// n_layers / add) or one after every `every` layers; exactly one of the two is > 0. Errors:
// both or neither given, 0 or negative, a count that does not divide n_layers.
Expected<std::vector<ExpandedLayer>> expansion_layers(int n_layers, int add, int every);

// The config of the expanded model: layers in the new order, added_layers updated (layers the
// original had added stay marked, at their new numbers).
ModelConfig expanded_config(const ModelConfig& c, const std::vector<ExpandedLayer>& order);

// An fp32 model expanded: every tensor copied from its source layer, the added layers' branch
// outputs zero.
Expected<std::unique_ptr<Model>> expand_model(const Model& m, const std::vector<ExpandedLayer>& order);

struct ExpandFileOptions {
  int add = 0, every = 0;
  uint32_t new_type = 0;  // ggml type of the added layers' matrices (GGUF models): F32 by default
};
struct ExpandFileStats {
  int layers_before = 0, layers_after = 0;
  int64_t params_added = 0;
};

// `longctx expand`: a longctx checkpoint (expanded in fp32) or a GGUF model of a pretrained
// architecture (its tensors copied in their own types, the added layers' tensors converted to
// opt.new_type; the metadata's block count updated). Written atomically: on any error no `out`.
Expected<ExpandFileStats> expand_file(const std::string& in, const std::string& out, const ExpandFileOptions& opt);

}  // namespace longctx::model
