// Model: a decoder-only transformer composed from ModelConfig. Owns the flat parameter buffer
// (and, for training, the gradient buffer of the same layout). train::Trainer and
// infer::Session are the only things that drive it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "kernels/qmatmul.h"
#include "layers/attention_block.h"
#include "layers/feed_forward.h"
#include "layers/linear.h"
#include "model/config.h"
#include "model/kv_cache.h"
#include "model/params.h"
#include "model/weights.h"
#include "position/rope.h"

namespace longctx::model {

// Learned positions cannot grow: an error naming both lengths when ctx is past c's table.
Status check_context_growth(const ModelConfig& c, int64_t ctx);

// What running a model for `ctx` tokens takes, before anything is allocated: its weights as
// inference reads them (Model::weight_bytes / planned_weight_bytes), the KV cache (the pool
// blocks one sequence holds at most: kv_cache.h; window layers hold their window only) and the
// activation scratch of one prefill pass of `ubatch` tokens (the arena, and one row of logits).
// kv_per_token: K and V bytes of one position over all layers (kv_heads * head_dim elements
// each, in the cache types).
struct MemoryPlan {
  // positions: the RoPE cos/sin tables for the whole context (0 for other position types).
  int64_t weights = 0, kv_per_token = 0, kv = 0, scratch = 0, positions = 0;
  int64_t total() const { return weights + kv + scratch + positions; }
};
// The plan of a cache of `ctx` positions filled in passes of `ubatch`, plus `extra_blocks` pool
// blocks (the pages forks write: Model::CacheOptions::extra_blocks). The RoPE tables are those of
// the model's whole context, c.ctx. Error for a cache type the model cannot use (kv_geometry).
Expected<MemoryPlan> plan_memory(const ModelConfig& c, int64_t weight_bytes, int64_t ctx, int64_t ubatch,
                                 uint32_t k_type = 0, uint32_t v_type = 0, int64_t extra_blocks = 0);
// Parses a --cache-type-k / --cache-type-v value: f32, f16 or q8_0 -> ggml type id.
Expected<uint32_t> parse_cache_type(const std::string& s);
// Floats of inference arena for a pass of `rows` tokens whose last `out_rows` get logits.
int64_t infer_arena_floats(const ModelConfig& c, int64_t rows, int64_t out_rows);
// MemAvailable of /proc/meminfo in bytes; -1 where unknown.
int64_t available_memory_bytes();
// An error naming the plan's parts when the KV cache and scratch (what is still to be allocated;
// the weights are loaded or mapped by then) exceed the available memory.
Status check_memory(const MemoryPlan& plan);

// A weight matrix of the model: parameter name and [rows, cols].
struct MatrixSlot {
  std::string name;
  int64_t rows = 0, cols = 0;
};

class Model {
 public:
  explicit Model(ModelConfig config);  // config must be valid (ModelConfig::validate)
  // The same weights under a config that differs only in context length, RoPE scaling or
  // attention patterns (evaluating or fine-tuning past the trained length). Learned positions
  // cannot grow: asking for more than their table is an error naming both lengths.
  Expected<std::unique_ptr<Model>> with_config(const ModelConfig& changed) const;

  const ModelConfig& config() const { return config_; }
  const ParamLayout& layout() const { return layout_; }
  float* params() { return params_.data(); }
  const float* params() const { return params_.data(); }
  int64_t n_params() const;  // without alignment padding
  // Gradients are allocated on first use.
  float* grads();
  void zero_grads();

  void init(Rng& rng) { init_params(config_, layout_, params_.data(), rng); }

  // Inference straight from a model file: every matrix (token table, block matrices, output)
  // whose source in `store` is stored as it is used (WeightSource::plain: no transpose, no row
  // reordering; a block of rows of a fused tensor is fine), in a type kernels::qlinear_forward
  // takes (Q8_0, Q4_0, Q4_1, F16, F32) and of the right shape, is read in place from the store's
  // mapping, which the model keeps open. Returns the names of those parameters; their fp32 slots
  // are never filled (and never become resident), so the caller loads only the rest
  // (read_weights' `skip`). Training and saving then refuse.
  std::vector<std::string> map_matrices(const TensorStore& store, const WeightMap& map);
  // The matrices map_matrices considers, and the view it would take of one (empty when the
  // source cannot be read in place).
  static std::vector<MatrixSlot> matrix_slots(const ModelConfig& c);
  static kernels::QMatrix in_place_view(const TensorStore& store, const WeightMap& map, const MatrixSlot& slot);
  // weight_bytes() of the model load_model would build, before building it (memory plans).
  static int64_t planned_weight_bytes(const ModelConfig& c, const TensorStore& store, const WeightMap& map,
                                      bool keep_quantized);
  bool has_mapped_weights() const { return mapped_owner_ != nullptr; }
  // Bytes of weights the inference path reads: mapped tensors in their file type, the rest fp32.
  int64_t weight_bytes() const;

  // Bytes of the RoPE tables built so far: 0 until the first forward pass needs them (so a
  // memory check can run first), then MemoryPlan::positions.
  int64_t position_table_bytes() const { return rope_.table_bytes(); }

  // Floats of activation arena needed for a training step (inference: model::infer_arena_floats).
  int64_t train_arena_floats(int64_t batch, int64_t seq_len) const;

  // Training step: forward over tokens [batch, seq_len] with targets, backward with the loss
  // scaled by grad_scale; gradients accumulate. Returns the summed (unscaled) loss.
  double forward_backward(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                          int64_t batch, int64_t seq_len, float grad_scale);
  // Summed loss without gradients (held-out evaluation).
  double forward_loss(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                      int64_t batch, int64_t seq_len);
  // Logits [batch * seq_len, vocab] of a full forward (no cache).
  void forward_logits(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                      float* logits);

  // A cache for one sequence of up to `capacity` positions over a pool of its own, sized for
  // `sequences` such sequences run in passes of at most `ubatch` tokens (0: capacity), plus
  // `extra_blocks` (for the pages forks write). The cache types must suit the model
  // (kv_geometry; CHECKed).
  struct CacheOptions {
    uint32_t k_type = 0, v_type = 0;
    int64_t ubatch = 0, sequences = 1, page_rows = kDefaultPageRows, extra_blocks = 0;
  };
  KvCache make_cache(int64_t capacity, const CacheOptions& o) const;
  KvCache make_cache(int64_t capacity, uint32_t k_type = 0, uint32_t v_type = 0) const {
    return make_cache(capacity, CacheOptions{k_type, v_type});
  }
  // Context shift of a cache holding n positions (KvCache::shift with RoPE keys re-rotated).
  Status shift_cache(KvCache& cache, int64_t keep, int64_t discard, int64_t n) const;
  // Runs n tokens at positions pos0.. through the cache (batch 1). Writes logits of the last
  // token to logits [vocab], or of all n tokens [n, vocab] when all_rows.
  void forward_cached(ThreadPool& pool, Arena& arena, KvCache& cache, const int32_t* tokens, int64_t n,
                      int64_t pos0, float* logits, bool all_rows);

 private:
  layers::LayerContext context(ThreadPool& pool, Arena& arena) const;
  // The RoPE tables for config().ctx positions, built on first use: at a long context they are
  // large (ctx * head_dim floats), so building the model must not allocate them before the
  // memory plan is checked. A Model is not used from two threads at once (its forward passes
  // are not const), so the lazy build needs no lock.
  const position::Rope& rope() const;
  // Embedding + blocks; returns the final hidden states [rows, D] (before the final norm).
  float* run_blocks(const layers::LayerContext& ctx, const int32_t* tokens, int64_t batch, int64_t seq_len,
                    int64_t pos0, KvCache* cache, bool save);
  const float* output_weight() const;
  const layers::BlockMatrices* mats(int l) const { return mats_.empty() ? nullptr : &mats_[l]; }
  // Logits [rows, vocab] of final-normed hidden states xn [rows, model_dim].
  void project_output(ThreadPool& pool, const float* xn, int64_t rows, float* logits) const;

  ModelConfig config_;
  ParamLayout layout_;
  Buffer params_, grads_;
  mutable position::Rope rope_;  // see rope()
  std::vector<std::vector<float>> alibi_;  // per layer, empty unless ALiBi
  // Set by map_matrices: what keeps the file mapped, the parameters read from it (with their
  // bytes there), and the views.
  std::shared_ptr<const void> mapped_owner_;
  std::unordered_map<std::string, int64_t> mapped_bytes_;
  std::vector<layers::BlockMatrices> mats_;
  kernels::QMatrix token_q_, output_q_;
  // Saved activations of the last training forward.
  std::vector<layers::AttentionSaved> attn_saved_;
  std::vector<layers::FeedForwardSaved> ffn_saved_;
};

}  // namespace longctx::model
