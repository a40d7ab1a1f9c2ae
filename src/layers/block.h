// Block kinds: the pieces a layer is made of (attention, feed-forward, ...), one file each, and
// the table that makes them by name. A model is embeddings, then every layer's blocks in order
// (LayerConfig::blocks), then the output head; model/ only loops over blocks.
//
// A block
//   - declares its tensors once (TensorDecl: name within the layer, shape, element type, whether
//     it trains, how it starts, whether inference may read it in place in a file's type); the
//     model's parameter layout, checkpoint names, initialisation, in-place matrices and weight
//     loading all walk these declarations;
//   - maps x_in [rows, model_dim] to x_out [rows, model_dim] (a residual block adds its branch to
//     x_in), and back: backward turns dL/dx_out into dL/dx_in in place and accumulates its
//     tensors' gradients;
//   - keeps what backward needs (its Saved struct, in the arena) when a pass saves;
//   - says how many arena floats a forward and a backward take (the model sizes the arena and the
//     memory plan from these, exactly);
//   - says what it keeps in the KV cache (kv_slots; attention: its kv_heads and pattern).
// Adding a block kind is one file plus one line in layers/registry.cc (or register_block_kind).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/element_type.h"
#include "core/status.h"
#include "kernels/qmatmul.h"
#include "kvcache/kv_cache.h"
#include "layers/context.h"
#include "layers/mlp.h"
#include "layers/settings.h"

namespace longctx::layers {

// How a tensor starts before training.
enum class Init {
  kZeros,
  kOnes,
  kNormal,       // N(0, 0.02^2) (GPT-2)
  kResidualOut,  // N(0, (0.02 / sqrt(2 n_layers))^2): a residual branch's output projection
  kLoraA,        // U(-1/sqrt(in), 1/sqrt(in)) for [rank, in] (PEFT's Kaiming-uniform default)
  kValue,        // every element TensorDecl::init_value (a router's starting threshold)
};

struct TensorDecl {
  std::string name;            // within the layer, e.g. "attn_q.weight" (the model adds "blk.N.")
  std::vector<int64_t> shape;  // PyTorch order: [out, in] for a matrix
  uint32_t type = kF32;        // element type held and saved (ggml id): fp32 for every trained tensor
  bool trainable = true;       // false: never updated by the optimizer
  bool decay = false;          // AdamW weight decay (matrices and embeddings)
  Init init = Init::kZeros;
  bool in_place = false;       // a matrix inference may read in its file type (kernels::QMatrix)
  // Part of what a residual block adds to its input (its output projection and that
  // projection's bias): zeroing every such tensor makes the block pass its input through
  // unchanged (block expansion, model/expand.h).
  bool branch_out = false;
  float init_value = 0.0f;  // Init::kValue's
  // A running statistic the block keeps through its gradient slot (a router's threshold): the
  // optimizer applies p -= gradient (averaged over the micro-batches and ranks that summed it)
  // instead of AdamW, outside the learning-rate schedule and the clipping norm.
  bool statistic = false;
};

// Arena floats of one allocation of n floats (the arena aligns each to 16).
inline int64_t arena_floats(int64_t n) { return (n + 15) & ~int64_t(15); }

// The weights of one call: the model's flat fp32 buffers (grads when training) and, for
// inference, per-tensor views in a file's type (indexed like the model's tensor list; null or a
// view without data: the fp32 parameter).
struct Weights {
  const float* params = nullptr;
  float* grads = nullptr;
  const kernels::QMatrix* views = nullptr;
  // Training a subset: per tensor of the model's list, nonzero when the tensor is frozen (its
  // gradient is not computed; gradients still flow through it). Null: everything trains.
  const uint8_t* frozen = nullptr;
  // Inference with adapter files: per tensor of the model's list, the low-rank terms loaded for
  // it (model::Model::add_adapter). Null: none.
  const std::vector<LoraTerm>* adapters = nullptr;
};

// One sequence's part of a cached pass: rows [row0, row0 + n) are its tokens at positions
// pos0.. .
struct SeqRows {
  int64_t row0 = 0, n = 0, pos0 = 0;
};

// One pass over batch sequences of seq_len tokens at positions pos0.. .
struct Pass {
  int64_t batch = 1, seq_len = 0, pos0 = 0;
  // Inference through the KV cache (batch 1): the seq_len rows are those of one or more
  // sequences, seqs[i] read and written through caches[i * S + s] (slot s of this block's S slots
  // in sequence i's cache; caches is null for a block without slots, which sees seqs for the
  // rows' positions).
  // Empty: no cache, the batch attends over its own keys.
  std::span<const SeqRows> seqs;
  const kvcache::KvStore* caches = nullptr;
  bool save = false;  // training: keep what backward needs
  int64_t rows() const { return batch * seq_len; }
};

// A routed block's count for one router (CoLT5, layers/router.h): rows routed and rows scored.
struct RouteCount {
  std::string router;  // "ffn", "attn_q", "attn_kv"
  int64_t routed = 0, considered = 0;
  // With LayerContext::route_trace: the positions of the routed rows, in pass order (batch 1).
  std::vector<int64_t> positions;
};

class Block {
 public:
  virtual ~Block() = default;
  const std::vector<TensorDecl>& tensors() const { return decls_; }
  // Where the tensors live once the model has laid them out: offsets (floats) into the flat
  // buffers in declaration order, and the index of the first in the model's tensor list.
  void bind(std::vector<int64_t> offsets, int64_t first_index);

  // What this block keeps in the KV cache, one slot per attention it runs; none by default.
  virtual std::vector<kvcache::KvSlot> kv_slots() const { return {}; }
  // Arena floats forward(pass) / backward(pass) allocate (each allocation rounded by
  // arena_floats). A saving forward's floats stay allocated until backward.
  virtual int64_t forward_floats(const Pass& pass) const = 0;
  virtual int64_t backward_floats(const Pass& pass) const = 0;
  // x_out may not alias x_in. With pass.caches, the block reads and writes its cache slots.
  virtual void forward(const LayerContext& ctx, const Weights& w, const Pass& pass, const float* x_in,
                       float* x_out) = 0;
  // After a saving forward of the same pass. dx: on entry dL/dx_out, on exit dL/dx_in.
  virtual void backward(const LayerContext& ctx, const Weights& w, const Pass& pass, float* dx) = 0;
  // Routed blocks: per router, what the forward passes since the last call routed; the counts
  // restart. Empty for other blocks.
  virtual std::vector<RouteCount> take_route_counts() { return {}; }

 protected:
  // Declares a tensor; returns its number (its index in tensors()).
  int declare(TensorDecl d);
  // With s.lora targeting `target`, declares matrix tensor i's LoRA pair: "<its name>.lora_a"
  // [rank, in] and ".lora_b" [out, rank] (llama.cpp's adapter names), B zero so training starts
  // from the base model.
  void declare_lora(const Settings& s, int matrix, const std::string& target);
  // The low-rank terms of matrix tensor i: its declared pair (with gradients when training),
  // then the adapters' (Weights::adapters).
  std::vector<LoraTerm> lora(const Weights& w, int i) const;
  // Tensor i's fp32 parameter, gradient (null when i < 0, no grads or tensor i is frozen) and
  // inference view (null unless w has views and tensor i's has data).
  const float* param(const Weights& w, int i) const { return i < 0 ? nullptr : w.params + offsets_[i]; }
  float* grad(const Weights& w, int i) const {
    return i < 0 || !w.grads || (w.frozen && w.frozen[first_ + i]) ? nullptr : w.grads + offsets_[i];
  }
  // Matrix tensor `matrix` (with bias tensor `bias`, -1: none) as an MLP reads it.
  MlpMatrix mlp_matrix(const Weights& w, int matrix, int bias) const {
    if (matrix < 0) return {};
    return {param(w, matrix), view(w, matrix), param(w, bias), lora(w, matrix), grad(w, matrix), grad(w, bias)};
  }
  const kernels::QMatrix* view(const Weights& w, int i) const {
    if (i < 0 || !w.views) return nullptr;
    const kernels::QMatrix* q = &w.views[first_ + i];
    return q->data ? q : nullptr;
  }

 private:
  std::vector<TensorDecl> decls_;
  std::vector<int64_t> offsets_;
  int64_t first_ = 0;
  struct LoraPair {
    int matrix = -1, a = -1, b = -1;
    int64_t rank = 0;
    float scale = 1.0f, dropout = 0.0f;
  };
  std::vector<LoraPair> lora_;
};

// What a block kind is made from.
struct BlockEnv {
  const Settings& settings;
  const LayerConfig& layer;
  int layer_index = 0;
  const std::string& args;  // the BlockSpec's
};
using BlockFactory = std::function<Expected<std::unique_ptr<Block>>(const BlockEnv&)>;

// Makes a block of spec.kind; error for an unknown kind or arguments the kind refuses.
Expected<std::unique_ptr<Block>> make_block(const BlockSpec& spec, const BlockEnv& env);
// Adds a kind to the table (tests, plugins); error when the name is taken.
Status register_block_kind(const std::string& kind, BlockFactory factory);
std::vector<std::string> block_kinds();

// A block kind's arguments "key=value,key=value" (each key at most once, from `known`); errors
// name the bad part and list the known keys.
Expected<std::vector<std::pair<std::string, std::string>>> parse_block_args(const std::string& args,
                                                                            const std::vector<std::string>& known);
// An integer argument value >= min; error names the key.
Expected<int64_t> parse_size_arg(const std::string& key, const std::string& value, int64_t min);

}  // namespace longctx::layers
