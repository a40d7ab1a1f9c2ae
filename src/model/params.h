// Parameters live in one flat fp32 buffer and gradients in a second one of the same layout,
// visited through one tensor list (load, save, zero-grad, AdamW, freezing all use it).
// Names and shapes follow GGUF's llama naming; shapes are PyTorch order ([out, in] for a matrix).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "model/config.h"

namespace longctx::model {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order, e.g. [out, in]
  int64_t offset = 0;          // in floats, into the flat buffer (aligned to 16 floats)
  int64_t numel = 0;
  bool decay = true;           // AdamW weight decay: matrices and embeddings only
};

// Offsets of one layer's tensors (-1 when absent). The same offsets index params and grads.
struct LayerOffsets {
  int64_t attn_norm_w = -1, attn_norm_b = -1;
  int64_t wq = -1, bq = -1, wk = -1, bk = -1, wv = -1, bv = -1, wo = -1, bo = -1;
  int64_t ffn_norm_w = -1, ffn_norm_b = -1;
  int64_t w_gate = -1, b_gate = -1, w_up = -1, b_up = -1, w_down = -1, b_down = -1;
};

struct ModelOffsets {
  int64_t token_embd = -1, position_embd = -1;
  std::vector<LayerOffsets> layers;
  int64_t output_norm_w = -1, output_norm_b = -1, output = -1;
};

class ParamLayout {
 public:
  explicit ParamLayout(const ModelConfig& config);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  const ModelOffsets& offsets() const { return offsets_; }
  int64_t total() const { return total_; }
  const ParamTensor* find(const std::string& name) const;

 private:
  int64_t add(const std::string& name, std::vector<int64_t> shape, bool decay);
  std::vector<ParamTensor> tensors_;
  ModelOffsets offsets_;
  int64_t total_ = 0;
};

// GPT-2-style initialisation: N(0, 0.02) for matrices and embeddings, output projections of
// each residual branch scaled by 1/sqrt(2 * n_layers), norm weights 1, biases 0.
void init_params(const ModelConfig& config, const ParamLayout& layout, float* params, Rng& rng);

}  // namespace longctx::model
