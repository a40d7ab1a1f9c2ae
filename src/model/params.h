// Parameters live in one flat fp32 buffer and gradients in a second one of the same layout,
// visited through one tensor list (load, save, zero-grad, AdamW, freezing all use it). The list
// is the declarations of the embeddings, every block in order and the output head
// (layers/block.h), under GGUF's llama-style names ("blk.N." + the block's name); shapes are
// PyTorch order ([out, in] for a matrix).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "layers/block.h"
#include "model/blocks.h"
#include "model/config.h"

namespace longctx::model {

struct ParamTensor {
  std::string name;
  std::vector<int64_t> shape;  // PyTorch order, e.g. [out, in]
  int64_t offset = 0;          // in floats, into the flat buffer (aligned to 16 floats)
  int64_t numel = 0;
  uint32_t type = kF32;        // element type held and saved (ggml id; fp32)
  bool trainable = true;
  bool decay = true;           // AdamW weight decay: matrices and embeddings only
  layers::Init init = layers::Init::kZeros;
  bool in_place = false;       // inference may read it in place in a file's type
  bool branch_out = false;     // a residual branch's output (layers::TensorDecl::branch_out)
  float init_value = 0.0f;     // layers::Init::kValue's
  bool statistic = false;      // layers::TensorDecl::statistic
  int block = -1;              // the declaring block (model order); -1: embeddings or head
  int layer = -1;              // the declaring block's layer; -1: embeddings or head
};

class ParamLayout {
 public:
  // Makes c's blocks to read their declarations (c must be valid).
  explicit ParamLayout(const ModelConfig& c);
  ParamLayout(const ModelConfig& c, const ModelBlocks& blocks);
  const std::vector<ParamTensor>& tensors() const { return tensors_; }
  int64_t total() const { return total_; }
  const ParamTensor* find(const std::string& name) const;
  int index(const std::string& name) const;  // -1 when absent
  // Block b's tensors: the index of its first in tensors() and their offsets in its order.
  int64_t block_first(int b) const { return block_first_[b]; }
  std::vector<int64_t> block_offsets(int b) const;
  // Which tensors the optimizer updates (model::Model::set_trainable); declarations' flags
  // until then.
  void set_trainable(int i, bool on) { tensors_[i].trainable = on; }

 private:
  void add(const std::string& name, const layers::TensorDecl& d, int block, int layer);
  std::vector<ParamTensor> tensors_;
  std::vector<int64_t> block_first_;
  int64_t total_ = 0;
};

// Each tensor as its declaration says: zeros, ones, N(0, 0.02) (GPT-2), or for a residual
// branch's output projection N(0, 0.02 / sqrt(2 * n_layers)).
void init_params(const ModelConfig& config, const ParamLayout& layout, float* params, Rng& rng);

}  // namespace longctx::model
