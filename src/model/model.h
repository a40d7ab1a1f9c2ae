// Model: a decoder-only transformer composed from ModelConfig: the embeddings, every layer's
// blocks in order (layers/block.h), the output head. Owns the flat parameter buffer (and, for
// training, the gradient buffer of the same layout). train::Trainer and infer::Session are the
// only things that drive it.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "dist/ring_attention.h"
#include "io/gguf.h"
#include "kernels/qmatmul.h"
#include "kvcache/kv_cache.h"
#include "layers/block.h"
#include "model/blocks.h"
#include "model/config.h"
#include "model/memory_plan.h"
#include "model/params.h"
#include "model/weights.h"
#include "position/rope.h"

namespace longctx::model {

// Learned positions cannot grow: an error naming both lengths when ctx is past c's table.
Status check_context_growth(const ModelConfig& c, int64_t ctx);

// A weight matrix of the model that inference may read in place: parameter name and [rows, cols].
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
  // Which tensors train (per tensor of layout()). A frozen tensor's gradient is not computed
  // (gradients still flow through it to the tensors below), the optimizer keeps no state for
  // it and leaves it as it is; the backward pass stops below the lowest block (or embedding)
  // that trains. Default: every tensor whose declaration trains.
  void set_trainable(const std::vector<bool>& on);
  int64_t trainable_params() const;  // elements of the tensors that train

  void init(Rng& rng) { init_params(config_, layout_, params_.data(), rng); }

  // LoRA (model/lora.h). The same model with LoRA tensors beside the matrices `lora` targets:
  // every tensor copied by name (matrices read in place stay so), A drawn from rng, B zero, so
  // it computes what this one does. Only the LoRA tensors train.
  Expected<std::unique_ptr<Model>> with_lora(const layers::LoraSettings& lora, Rng& rng) const;
  // Applies an adapter (llama.cpp's GGUF adapter layout) at run time, `scale` times its own
  // alpha / rank, added to the terms of adapters before it. Errors (nothing applied): not an
  // adapter, a tensor for a matrix this model lacks or of another shape (an adapter for
  // another base), a target longctx applies no LoRA to, an A without its B.
  Status add_adapter(const io::GgufFile& adapter, float scale);
  int adapter_count() const { return adapter_count_; }
  // W += scale B A for every adapter term, then drops the adapters (fp32 weights only).
  Status merge_adapters();

  // Inference straight from a model file: every tensor declared readable in place (the token
  // table, block matrices, the output) whose source in `store` is stored as it is used
  // (WeightSource::plain: no transpose, no row reordering; a block of rows of a fused tensor is
  // fine), in a type kernels::qlinear_forward takes (Q8_0, Q4_0, Q4_1, F16, F32) and of the right
  // shape, is read in place from the store's mapping, which the model keeps open. Returns the
  // names of those parameters; their fp32 slots are never filled (and never become resident), so
  // the caller loads only the rest (read_weights' `skip`). Such matrices can be frozen in
  // training (forward and backward through their dequantized values), not trained; saving
  // writes them in their file types.
  // Matrices named in `except` stay fp32 (the ones a run trains: training reads the frozen
  // matrices in place, model::LoadOptions::fp32).
  std::vector<std::string> map_matrices(const TensorStore& store, const WeightMap& map,
                                        const std::set<std::string>& except = {});
  // The matrices map_matrices considers, and the view it would take of one (empty when the
  // source cannot be read in place).
  static std::vector<MatrixSlot> matrix_slots(const ModelConfig& c);
  static kernels::QMatrix in_place_view(const TensorStore& store, const WeightMap& map, const MatrixSlot& slot);
  // weight_bytes() of the model load_model would build, before building it (memory plans).
  static int64_t planned_weight_bytes(const ModelConfig& c, const TensorStore& store, const WeightMap& map,
                                      bool keep_quantized);
  bool has_mapped_weights() const { return mapped_owner_ != nullptr; }
  // Tensor i (of layout()) as read in place, or null when it is held in fp32.
  const kernels::QMatrix* mapped(int i) const { return view(i) && view(i)->data ? view(i) : nullptr; }
  // Bytes of weights the inference path reads: mapped tensors in their file type, the rest fp32.
  int64_t weight_bytes() const;  // packed copies (pack_for_batches) included
  // Packs every matrix read in place that the AMX path takes (Q4_0 / Q4_1 on a CPU with AMX)
  // into that path's form once (kernels::qmatmul_pack), kept beside the file's bytes, so batched
  // steps (serving several sequences) skip the repacking each product otherwise does. Results do
  // not change. Returns the bytes added (0: nothing to pack here). Call before inference.
  int64_t pack_for_batches(ThreadPool& pool);
  // Prompt rows through the integer (AMX) tiles instead of the exact fp32 product of dequantized
  // weights: 2x faster prompts, and one product per step for every row of a batched step, at
  // the activation rounding decoding already has (SmolLM2: prompt logits within 5.5% of the
  // logit range of the float64 reference instead of 3e-6). Takes effect only where every matrix
  // read in place is Q4_0 / Q4_1 / Q8_0 and the CPU has AMX (then every row, alone or batched,
  // keeps the bits of the VNNI decode path); returns whether it did. Attention through the cache
  // then runs row by row too (attention::TileSizes::row_invariant), so a row's results do not
  // depend on the pass that computes it: a prompt chunk of any length, starting anywhere, a
  // decoding step, any neighbours. A prefix one request computed is then exactly what another
  // would compute alone (the server shares prefixes at any token). The inference commands
  // (generate, chat, serve, bench) turn it on; scoring (perplexity, eval, logits) keeps it off.
  bool set_integer_prefill(bool on);
  bool integer_prefill() const { return integer_prefill_; }
  // Attention attribution: while set, forward_cached adds every key's attention weight (summed
  // over the pass's rows, the heads and the layers) to mass[key position] (attention/
  // attribution.h); mass must hold the cache's capacity. Null: off.
  void set_attribution(double* mass) { attribution_ = mass; }
  // Matrix products of fp32 weights in bf16 with fp32 sums (kernels/gemm_bf16.h), forward and
  // backward: PyTorch's bf16 autocast for the linear layers (weights, gradients, optimizer and
  // everything else stay fp32). Takes effect only where the CPU runs gemm_bf16; returns whether
  // it did. Matrices read in their file type (Q8_0, ...) keep their own paths.
  bool set_bf16(bool on);
  bool bf16() const { return bf16_; }

  // Bytes of the RoPE tables built so far: 0 until the first forward pass needs them (so a
  // memory check can run first), then MemoryPlan::positions.
  int64_t position_table_bytes() const { return rope_.table_bytes(); }

  // Floats of activation arena a training step / an inference pass needs (memory_plan.h).
  int64_t train_arena_floats(int64_t batch, int64_t seq_len) const;
  int64_t infer_arena_floats(int64_t rows, int64_t out_rows) const;

  // LoRA dropout masks of the next training steps derive from this seed (0: none).
  void set_dropout_seed(uint64_t seed) { dropout_seed_ = seed; }
  // Sequence-parallel passes without a cache (training, held-out loss): token arrays hold this
  // rank's zig-zag share of each sequence, attention runs as a ring (layers::LayerContext).
  // Null: off. The model keeps the pointer.
  void set_seq_parallel(const dist::SeqParallel* sp) { seq_parallel_ = sp; }
  // Training step: forward over tokens [batch, seq_len] with targets, backward with the loss
  // scaled by grad_scale; gradients accumulate. Returns the summed (unscaled) loss.
  // `grads_final_from(offset)`, when given, is called as backward goes down the model, each
  // time the gradients [offset, layout().total()) are complete (dist::GradReducer starts
  // summing them over ranks while the blocks below still compute); the last call is with 0.
  double forward_backward(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                          int64_t batch, int64_t seq_len, float grad_scale,
                          const std::function<void(int64_t)>& grads_final_from = {});
  // Summed loss without gradients (held-out evaluation).
  double forward_loss(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                      int64_t batch, int64_t seq_len);
  // Logits [batch * seq_len, vocab] of a full forward (no cache).
  void forward_logits(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                      float* logits);
  // The last hidden states [batch * seq_len, model_dim] of a full forward (no cache), after the
  // final norm where the model has one: what an encoder's pooling reads. Any model.
  void forward_hidden(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                      float* hidden);

  // Routed blocks (CoLT5): per layer and router, the rows routed and scored by the forward
  // passes since the last call (the counts restart). Empty for a model without routers.
  struct LayerRouting {
    int layer = 0;
    layers::RouteCount count;
  };
  std::vector<LayerRouting> take_route_counts();
  // While on, the counts also list the routed positions (RouteCount::positions).
  void set_route_trace(bool on) { route_trace_ = on; }

  // The cache slots of the model (one per block that keeps keys: model::kv_slots).
  int kv_slot_count() const { return kv_slot_count_; }
  // A cache for one sequence of up to `capacity` positions over a pool of its own, sized for
  // `sequences` such sequences run in passes of at most `ubatch` tokens (0: capacity), plus
  // `extra_blocks` (for the pages forks write). Error for cache types the model cannot use.
  struct CacheOptions {
    uint32_t k_type = 0, v_type = 0;
    int64_t ubatch = 0, sequences = 1, page_rows = kvcache::kDefaultPageRows, extra_blocks = 0;
  };
  Expected<kvcache::KvCache> make_cache(int64_t capacity, const CacheOptions& o) const;
  Expected<kvcache::KvCache> make_cache(int64_t capacity, uint32_t k_type = 0, uint32_t v_type = 0) const {
    return make_cache(capacity, CacheOptions{k_type, v_type});
  }
  // Context shift of a cache holding n positions (KvCache::shift with RoPE keys re-rotated).
  Status shift_cache(kvcache::KvCache& cache, int64_t keep, int64_t discard, int64_t n) const;
  // Runs n tokens at positions pos0.. through the cache (batch 1). Writes logits of the last
  // token to logits [vocab], or of all n tokens [n, vocab] when all_rows. Error when the cache's
  // pool has no block left for the new rows.
  Status forward_cached(ThreadPool& pool, Arena& arena, kvcache::KvCache& cache, const int32_t* tokens, int64_t n,
                        int64_t pos0, float* logits, bool all_rows);
  // One step of several sequences (serving): their rows in one pass, each weight matrix read
  // once for all the single-token steps together, and once per prompt chunk. Each row meets the
  // arithmetic a forward_cached of its step alone gives it (the matrix product path its step's
  // row count takes alone, its own attention call), so a sequence's results do not depend on
  // its neighbours. Writes the logits of every step's last token to logits [steps, vocab].
  // Error when a cache's pool has no block left (the caches before it have been prepared).
  struct SeqStep {
    kvcache::KvCache* cache = nullptr;  // distinct per step
    const int32_t* tokens = nullptr;
    int64_t n = 0, pos0 = 0;
  };
  Status forward_batch(ThreadPool& pool, Arena& arena, std::span<const SeqStep> steps, float* logits);

 private:
  layers::LayerContext context(ThreadPool& pool, Arena& arena) const;
  // The RoPE tables for config().ctx positions, built on first use: at a long context they are
  // large (ctx * head_dim floats), so building the model must not allocate them before the
  // memory plan is checked. A Model is not used from two threads at once (its forward passes
  // are not const), so the lazy build needs no lock.
  const position::Rope& rope() const;
  // Embeddings + blocks; returns the final hidden states [rows, D] (before the final norm).
  // Through the caches: seqs[i]'s rows (batch 1) through caches[i]; seqs empty: no cache.
  float* run_blocks(const layers::LayerContext& ctx, const int32_t* tokens, int64_t batch, int64_t seq_len,
                    std::span<const layers::SeqRows> seqs, kvcache::KvCache* const* caches, bool save);
  const float* param(int i) const { return i < 0 ? nullptr : params_.data() + layout_.tensors()[i].offset; }
  float* grad(int i) { return i < 0 || !layout_.tensors()[i].trainable ? nullptr : grads() + layout_.tensors()[i].offset; }
  const kernels::QMatrix* view(int i) const { return i < 0 || views_.empty() ? nullptr : &views_[i]; }
  // Logits [rows, vocab] of final-normed hidden states xn [rows, model_dim].
  void project_output(const layers::LayerContext& ctx, const float* xn, int64_t rows, float* logits) const;

  ModelConfig config_;
  layers::Settings settings_;
  ModelBlocks blocks_;
  std::vector<int> kv_slot_;     // per block: its first cache slot, or -1
  std::vector<int> kv_slots_of_;  // per block: its cache slots
  int kv_slot_count_ = 0;
  ParamLayout layout_;
  // Indices into layout_.tensors() of the embeddings' and the head's tensors (-1: absent).
  int token_ = -1, position_ = -1, out_norm_w_ = -1, out_norm_b_ = -1, output_ = -1;
  double* attribution_ = nullptr;
  int types_ = -1, embed_norm_w_ = -1, embed_norm_b_ = -1;
  Buffer params_, grads_;
  std::vector<uint8_t> frozen_;  // per tensor: 1 = frozen (empty: none is)
  mutable position::Rope rope_;  // see rope()
  // Set by map_matrices: what keeps the file mapped, the parameters read from it (with their
  // bytes there), and the views (per tensor of the layout; empty when nothing is mapped).
  std::shared_ptr<const void> mapped_owner_;
  std::unordered_map<std::string, int64_t> mapped_bytes_;
  std::vector<kernels::QMatrix> views_;
  std::vector<std::unique_ptr<uint8_t[]>> packed_;  // pack_for_batches' buffers (views_ point in)
  int64_t packed_bytes_ = 0;
  bool integer_prefill_ = false;
  bool route_trace_ = false;
  bool bf16_ = false;
  std::unique_ptr<kernels::Bf16WeightCache> bf16_weights_;  // with bf16_: packed F32 views
  uint64_t dropout_seed_ = 0;
  const dist::SeqParallel* seq_parallel_ = nullptr;
  // add_adapter: per tensor, the terms (pointing into adapter_data_).
  std::vector<std::vector<layers::LoraTerm>> adapters_;
  std::vector<std::vector<float>> adapter_data_;
  int adapter_count_ = 0;
};

}  // namespace longctx::model
