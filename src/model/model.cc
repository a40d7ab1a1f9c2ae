#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>

#include "kernels/gemm_bf16.h"
#include "kernels/cross_entropy.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/embedding.h"
#include "layers/linear.h"
#include "layers/norm.h"
#include "layers/output_head.h"
#include "quant/formats.h"

namespace longctx::model {
namespace {

ModelBlocks blocks_of(const ModelConfig& c) {
  CHECK_MSG(c.validate().ok(), "Model: invalid config");
  auto b = make_blocks(c);
  CHECK(b.ok());
  return std::move(*b);
}

}  // namespace

Model::Model(ModelConfig config)
    : config_(std::move(config)),
      settings_(config_.settings()),
      blocks_(blocks_of(config_)),
      layout_(config_, blocks_) {
  for (size_t b = 0; b < blocks_.blocks.size(); ++b) {
    blocks_.blocks[b]->bind(layout_.block_offsets(static_cast<int>(b)), layout_.block_first(static_cast<int>(b)));
    const int n = static_cast<int>(blocks_.blocks[b]->kv_slots().size());
    kv_slot_.push_back(n > 0 ? kv_slot_count_ : -1);
    kv_slots_of_.push_back(n);
    kv_slot_count_ += n;
  }
  token_ = layout_.index("token_embd.weight");
  position_ = layout_.index("position_embd.weight");
  out_norm_w_ = layout_.index("output_norm.weight");
  out_norm_b_ = layout_.index("output_norm.bias");
  output_ = config_.encoder ? -1 : config_.tied_embeddings ? token_ : layout_.index("output.weight");
  types_ = layout_.index("token_types.weight");
  embed_norm_w_ = layout_.index("token_embd_norm.weight");
  embed_norm_b_ = layout_.index("token_embd_norm.bias");
  params_.resize(layout_.total());
}

Status check_context_growth(const ModelConfig& c, int64_t ctx) {
  if (c.pos == PosType::kLearned && ctx > c.ctx)
    return Status::Error("learned positions cover " + std::to_string(c.ctx) + " positions; length " +
                         std::to_string(ctx) + " is past the table");
  return Status::Ok();
}

Expected<std::unique_ptr<Model>> Model::with_config(const ModelConfig& changed) const {
  LONGCTX_RETURN_IF_ERROR(check_context_growth(config_, changed.ctx));
  LONGCTX_RETURN_IF_ERROR(changed.validate());
  auto m = std::make_unique<Model>(changed);
  const auto& a = layout_.tensors();
  const auto& b = m->layout_.tensors();
  bool same = a.size() == b.size() && layout_.total() == m->layout_.total();
  for (size_t i = 0; same && i < a.size(); ++i) same = a[i].name == b[i].name && a[i].shape == b[i].shape;
  if (!same) return Status::Error("the new config changes the weights' shapes");
  // Tensor by tensor, so that the never-written slots of mapped matrices stay non-resident.
  for (const auto& t : a)
    if (!mapped_bytes_.count(t.name))
      std::memcpy(m->params() + t.offset, params() + t.offset, t.numel * sizeof(float));
  m->mapped_owner_ = mapped_owner_;
  m->mapped_bytes_ = mapped_bytes_;
  m->views_ = views_;
  return m;
}

Expected<std::unique_ptr<Model>> Model::with_lora(const layers::LoraSettings& lora, Rng& rng) const {
  if (config_.lora.rank > 0) return Status::Error("the model already has LoRA tensors");
  ModelConfig c = config_;
  c.lora = lora;
  LONGCTX_RETURN_IF_ERROR(c.validate());
  auto m = std::make_unique<Model>(c);
  // A from its declared init, B zero: draw every tensor, then copy the base's over them.
  m->init(rng);
  const auto& dst = m->layout_.tensors();
  m->views_.assign(dst.size(), kernels::QMatrix{});
  std::vector<bool> on(dst.size(), false);
  for (size_t i = 0; i < dst.size(); ++i) {
    const ParamTensor& t = dst[i];
    const int j = layout_.index(t.name);
    if (j < 0) {  // a LoRA tensor
      on[i] = true;
      continue;
    }
    if (!views_.empty() && views_[j].data) {
      m->views_[i] = views_[j];
      continue;
    }
    std::memcpy(m->params() + t.offset, params() + layout_.tensors()[j].offset, t.numel * sizeof(float));
  }
  m->mapped_owner_ = mapped_owner_;
  m->mapped_bytes_ = mapped_bytes_;
  if (!m->mapped_owner_) m->views_.clear();
  m->set_trainable(on);
  return m;
}

namespace {
// A name from a file as an error message may show it: control bytes as \xNN, so the
// message stays one line.
std::string shown(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}
}  // namespace

Status Model::add_adapter(const io::GgufFile& f, float scale) {
  auto type = f.get_string("general.type");
  auto kind = f.get_string("adapter.type");
  if (!type.ok() || *type != "adapter" || !kind.ok() || *kind != "lora")
    return Status::Error("not a LoRA adapter (general.type = adapter, adapter.type = lora)");
  double alpha = 0;
  if (f.find("adapter.lora.alpha")) {
    auto a = f.get_float("adapter.lora.alpha");
    if (!a.ok()) return a.status();
    alpha = *a;
    if (!std::isfinite(alpha)) return Status::Error("adapter.lora.alpha is not a finite number");
  }
  if (!std::isfinite(scale)) return Status::Error("the adapter scale must be finite");
  static const char* kTargets[] = {"attn_q.weight", "attn_k.weight", "attn_v.weight", "attn_output.weight",
                                   "ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"};
  struct Pending {
    int index;
    std::vector<float> a, b;
    int64_t rank;
  };
  std::vector<Pending> pending;
  auto fp32 = [](const io::GgufTensorInfo& t, std::vector<float>* out) -> Status {
    if (!quant::can_dequantize(t.type))
      return Status::Error("tensor '" + shown(t.name) + "' is of type " + quant::type_name(t.type) + ", which longctx cannot read");
    out->resize(t.n_elements);
    const int64_t row = t.dims[0], rows = static_cast<int64_t>(t.n_elements) / row;
    const int64_t rb = quant::row_bytes(t.type, row);
    for (int64_t r = 0; r < rows; ++r)
      LONGCTX_RETURN_IF_ERROR(quant::dequantize_row(t.type, t.data + r * rb, out->data() + r * row, row));
    return Status::Ok();
  };
  for (const io::GgufTensorInfo& ta : f.tensors()) {
    const std::string suffix = ".lora_a";
    if (ta.name.size() > suffix.size() && ta.name.compare(ta.name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      const std::string base = ta.name.substr(0, ta.name.size() - suffix.size());
      const io::GgufTensorInfo* tb = f.find_tensor(base + ".lora_b");
      if (!tb) return Status::Error("tensor '" + shown(ta.name) + "' has no '" + shown(base) + ".lora_b'");
      const int i = layout_.index(base);
      if (i < 0) return Status::Error("the adapter has tensors for '" + shown(base) + "', which this model lacks (an adapter for another base?)");
      int layer = -1;
      std::string rest;
      if (!split_block_name(base, &layer, &rest) ||
          std::find(std::begin(kTargets), std::end(kTargets), rest) == std::end(kTargets))
        return Status::Error("the adapter targets '" + shown(base) + "'; longctx applies LoRA to attn_q/k/v/output and ffn_gate/up/down");
      const ParamTensor& w = layout_.tensors()[i];
      // GGUF order: A [in, rank], B [rank, out].
      if (ta.dims.size() != 2 || tb->dims.size() != 2 || ta.dims[0] != w.shape[1] || tb->dims[1] != w.shape[0] ||
          ta.dims[1] != tb->dims[0] || ta.dims[1] < 1)
        return Status::Error("adapter tensors for '" + shown(base) + "' do not fit its shape [" + std::to_string(w.shape[0]) + ", " +
                             std::to_string(w.shape[1]) + "] (an adapter for another base?)");
      Pending p{i, {}, {}, ta.dims[1]};
      LONGCTX_RETURN_IF_ERROR(fp32(ta, &p.a));
      LONGCTX_RETURN_IF_ERROR(fp32(*tb, &p.b));
      pending.push_back(std::move(p));
    } else if (ta.name.size() <= 7 || ta.name.compare(ta.name.size() - 7, 7, ".lora_b") != 0) {
      return Status::Error("tensor '" + shown(ta.name) + "' is not a LoRA A or B");
    }
  }
  if (pending.empty()) return Status::Error("the adapter holds no LoRA tensors");
  if (adapters_.empty()) adapters_.resize(layout_.tensors().size());
  adapter_data_.reserve(adapter_data_.size() + 2 * pending.size());
  for (Pending& p : pending) {
    adapter_data_.push_back(std::move(p.a));
    const float* a = adapter_data_.back().data();
    adapter_data_.push_back(std::move(p.b));
    const float* b = adapter_data_.back().data();
    const float s = scale * (alpha != 0 ? static_cast<float>(alpha / static_cast<double>(p.rank)) : 1.0f);
    adapters_[p.index].push_back({a, b, nullptr, nullptr, p.rank, s});
  }
  ++adapter_count_;
  return Status::Ok();
}

Status Model::merge_adapters() {
  if (has_mapped_weights()) return Status::Error("merging needs the fp32 weights");
  for (size_t i = 0; i < adapters_.size(); ++i) {
    if (adapters_[i].empty()) continue;  // (and not a matrix: no shape[1] to read)
    const ParamTensor& t = layout_.tensors()[i];
    float* w = params() + t.offset;
    const int64_t out = t.shape[0], in = t.shape[1];
    for (const layers::LoraTerm& term : adapters_[i])
      kernels::gemm(ThreadPool::global(), false, false, out, in, term.rank, term.scale, term.b, term.rank, term.a, in,
                    1.0f, w, in);
  }
  adapters_.clear();
  adapter_data_.clear();
  adapter_count_ = 0;
  return Status::Ok();
}

std::vector<MatrixSlot> Model::matrix_slots(const ModelConfig& c) {
  std::vector<MatrixSlot> out;
  const ParamLayout layout(c);
  for (const ParamTensor& t : layout.tensors())
    if (t.in_place && t.shape.size() == 2) out.push_back({t.name, t.shape[0], t.shape[1]});
  return out;
}

kernels::QMatrix Model::in_place_view(const TensorStore& store, const WeightMap& map, const MatrixSlot& slot) {
  kernels::QMatrix q;
  const WeightSource src = map.source_of(slot.name);
  if (!src.plain()) return q;
  auto r = resolve_source(store, src, slot.name, {slot.rows, slot.cols});
  if (!r.ok() || !kernels::qmatmul_supports(r->tensor->type)) return q;
  const int64_t rb = quant::row_bytes(r->tensor->type, slot.cols);
  q.type = r->tensor->type;
  q.rows = slot.rows;
  q.cols = slot.cols;
  q.data = r->tensor->data + r->row0 * rb;
  q.row_bytes = rb;
  return q;
}

int64_t Model::planned_weight_bytes(const ModelConfig& c, const TensorStore& store, const WeightMap& map,
                                    bool keep_quantized) {
  const ParamLayout layout(c);
  int64_t n = 0;
  for (const auto& t : layout.tensors()) n += t.numel * static_cast<int64_t>(sizeof(float));
  if (!keep_quantized) return n;
  for (const MatrixSlot& s : matrix_slots(c)) {
    const kernels::QMatrix q = in_place_view(store, map, s);
    if (q.data) n += q.row_bytes * q.rows - s.rows * s.cols * static_cast<int64_t>(sizeof(float));
  }
  return n;
}

std::vector<std::string> Model::map_matrices(const TensorStore& store, const WeightMap& map,
                                            const std::set<std::string>& except) {
  std::vector<std::string> names;
  views_.assign(layout_.tensors().size(), kernels::QMatrix{});
  for (size_t i = 0; i < layout_.tensors().size(); ++i) {
    const ParamTensor& t = layout_.tensors()[i];
    if (!t.in_place || t.shape.size() != 2 || except.count(t.name)) continue;
    const kernels::QMatrix q = in_place_view(store, map, {t.name, t.shape[0], t.shape[1]});
    if (!q.data) continue;
    views_[i] = q;
    names.push_back(t.name);
    mapped_bytes_[t.name] = q.row_bytes * q.rows;
  }
  if (!names.empty()) mapped_owner_ = store.owner();
  return names;
}

int64_t Model::pack_for_batches(ThreadPool& pool) {
  int64_t added = 0;
  for (kernels::QMatrix& q : views_) {
    if (q.packed || !q.data) continue;
    const int64_t bytes = kernels::qmatmul_packed_bytes(q);
    if (bytes == 0) continue;
    packed_.push_back(std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(bytes + 64)));
    const uintptr_t p = reinterpret_cast<uintptr_t>(packed_.back().get());
    uint8_t* out = reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t{63});
    kernels::qmatmul_pack(pool, q, out);
    q.packed = out;
    added += bytes + 64;
  }
  packed_bytes_ += added;
  return added;
}

bool Model::set_integer_prefill(bool on) {
  integer_prefill_ = false;
  if (!on) return false;
  // A matrix the AMX path can pack is one it runs (its type, and a CPU with AMX).
  bool any = false;
  for (const kernels::QMatrix& q : views_) {
    if (!q.data) continue;
    if (kernels::qmatmul_packed_bytes(q) == 0) return false;
    any = true;
  }
  integer_prefill_ = any;
  return integer_prefill_;
}

int64_t Model::weight_bytes() const {
  int64_t n = packed_bytes_;
  for (const auto& t : layout_.tensors()) {
    auto it = mapped_bytes_.find(t.name);
    n += it != mapped_bytes_.end() ? it->second : t.numel * static_cast<int64_t>(sizeof(float));
  }
  return n;
}

int64_t Model::n_params() const {
  int64_t n = 0;
  for (const auto& t : layout_.tensors()) n += t.numel;
  return n;
}

float* Model::grads() {
  if (grads_.size() != layout_.total()) grads_.resize(layout_.total());
  return grads_.data();
}

void Model::zero_grads() {
  grads();
  if (frozen_.empty()) return grads_.zero();
  // Only the tensors that train: the rest of the buffer is never touched (and, mapped lazily,
  // never becomes resident).
  for (const auto& t : layout_.tensors())
    if (t.trainable) std::fill(grads_.data() + t.offset, grads_.data() + t.offset + t.numel, 0.0f);
}

void Model::set_trainable(const std::vector<bool>& on) {
  CHECK(on.size() == layout_.tensors().size());
  frozen_.assign(on.size(), 0);
  bool any_frozen = false;
  for (size_t i = 0; i < on.size(); ++i) {
    layout_.set_trainable(static_cast<int>(i), on[i]);
    frozen_[i] = on[i] ? 0 : 1;
    any_frozen |= !on[i];
  }
  if (!any_frozen) frozen_.clear();
}

int64_t Model::trainable_params() const {
  int64_t n = 0;
  for (const auto& t : layout_.tensors())
    if (t.trainable) n += t.numel;
  return n;
}

std::vector<Model::LayerRouting> Model::take_route_counts() {
  std::vector<LayerRouting> out;
  for (size_t b = 0; b < blocks_.blocks.size(); ++b)
    for (const layers::RouteCount& c : blocks_.blocks[b]->take_route_counts()) out.push_back({blocks_.layer[b], c});
  return out;
}

layers::LayerContext Model::context(ThreadPool& pool, Arena& arena) const {
  layers::LayerContext ctx;
  ctx.settings = &settings_;
  ctx.pool = &pool;
  ctx.arena = &arena;
  ctx.rope = config_.pos == PosType::kRope ? &rope() : nullptr;
  if (integer_prefill_) {
    ctx.path = kernels::QPath::kAmx;
    ctx.row_invariant = true;
  }
  ctx.attribution = attribution_;
  ctx.bf16 = bf16_;
  ctx.bf16_weights = bf16_weights_.get();
  ctx.seq_parallel = seq_parallel_;
  ctx.route_trace = route_trace_;
  return ctx;
}

bool Model::set_bf16(bool on) {
  bf16_ = on && kernels::gemm_bf16_supported();
  if (bf16_ && !bf16_weights_) bf16_weights_ = std::make_unique<kernels::Bf16WeightCache>();
  if (!bf16_) bf16_weights_.reset();
  return bf16_;
}

const position::Rope& Model::rope() const {
  // One table serves every layer (validate() requires one head_dim under RoPE).
  if (config_.pos == PosType::kRope && rope_.max_pos() == 0)
    rope_ = position::Rope(config_.layers[0].head_dim, config_.rope_theta, config_.ctx, config_.rope_scaling);
  return rope_;
}

int64_t Model::train_arena_floats(int64_t batch, int64_t seq_len) const {
  return model::train_arena_floats(config_, blocks_, batch, seq_len);
}

int64_t Model::infer_arena_floats(int64_t rows, int64_t out_rows) const {
  return model::infer_arena_floats(config_, blocks_, rows, out_rows);
}

float* Model::run_blocks(const layers::LayerContext& ctx, const int32_t* tokens, int64_t batch, int64_t seq_len,
                         std::span<const layers::SeqRows> seqs, kvcache::KvCache* const* caches, bool save) {
  const int64_t rows = batch * seq_len, D = config_.model_dim;
  Arena& arena = *ctx.arena;
  float* x = arena.alloc(rows * D);
  const kernels::QMatrix* qtoken = view(token_);  // (training: only a frozen table is mapped)
  const layers::EmbeddingParams<const float*> ep{param(token_), param(position_), param(types_), param(embed_norm_w_),
                                                 param(embed_norm_b_)};
  if (seqs.empty() && ctx.seq_parallel) {
    // Each sequence's two zig-zag chunks at their global positions.
    const dist::RingLayout lay = ctx.seq_parallel->layout();
    for (int64_t b = 0; b < batch; ++b)
      for (int which = 0; which < 2; ++which) {
        const int64_t row = b * seq_len + which * lay.chunk();
        layers::embedding_forward(ctx, ep, qtoken, tokens + row, 1, lay.chunk(), lay.chunk_start(lay.rank, which),
                                  x + row * D);
      }
  } else if (seqs.empty()) {
    layers::embedding_forward(ctx, ep, qtoken, tokens, batch, seq_len, 0, x);
  } else {
    for (const layers::SeqRows& sr : seqs)
      layers::embedding_forward(ctx, ep, qtoken, tokens + sr.row0, 1, sr.n, sr.pos0, x + sr.row0 * D);
  }
  const layers::Weights w{params_.data(), save ? grads() : nullptr, views_.empty() ? nullptr : views_.data(), nullptr,
                          adapters_.empty() ? nullptr : adapters_.data()};
  layers::Pass pass;
  pass.batch = batch;
  pass.seq_len = seq_len;
  pass.save = save;
  std::vector<kvcache::KvStore> stores;
  // Without saving, the hidden states alternate between two buffers and each block's
  // temporaries are released as soon as it is done: the arena holds one block at a time.
  float* other = save ? nullptr : arena.alloc(rows * D);
  for (size_t b = 0; b < blocks_.blocks.size(); ++b) {
    pass.seqs = seqs;  // every block sees the rows' sequences; those with a slot, their caches
    pass.caches = nullptr;
    if (!seqs.empty() && kv_slot_[b] >= 0) {
      stores.clear();
      for (size_t i = 0; i < seqs.size(); ++i)
        for (int s = 0; s < kv_slots_of_[b]; ++s) stores.push_back(caches[i]->store(kv_slot_[b] + s));
      pass.caches = stores.data();
    }
    if (save) {
      float* out = arena.alloc(rows * D);
      blocks_.blocks[b]->forward(ctx, w, pass, x, out);
      x = out;
    } else {
      const int64_t m = arena.mark();
      blocks_.blocks[b]->forward(ctx, w, pass, x, other);
      arena.rewind(m);
      std::swap(x, other);
    }
  }
  return x;
}

double Model::forward_backward(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                               int64_t batch, int64_t seq_len, float grad_scale,
                               const std::function<void(int64_t)>& grads_final_from) {
  CHECK(seq_len <= config_.ctx);
  CHECK_MSG(!config_.encoder, "an encoder has no language-model head to train");
  for (size_t i = 0; i < views_.size(); ++i)
    CHECK_MSG(!views_[i].data || !layout_.tensors()[i].trainable,
              "a tensor read in place in its file type cannot train (load it in fp32: LoadOptions::fp32)");
  const int64_t rows = batch * seq_len, D = config_.model_dim, V = config_.vocab_size;
  arena.reserve(train_arena_floats(batch, seq_len));
  arena.reset();
  layers::LayerContext ctx = context(pool, arena);
  // Frozen matrices read in their file type: the exact fp32 product of their dequantized values,
  // whatever the row count (the integer paths would round the activations).
  ctx.path = kernels::QPath::kDequant;
  ctx.row_invariant = false;
  ctx.dropout_seed = dropout_seed_;
  float* x = run_blocks(ctx, tokens, batch, seq_len, {}, nullptr, true);
  float* xn = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  const layers::NormParams<const float*> fn{param(out_norm_w_), param(out_norm_b_)};
  layers::norm_forward(ctx, fn, x, rows, xn, mean, rstd);
  float* logits = arena.alloc(rows * V);
  const float* wout = param(output_);
  layers::linear(ctx, xn, rows, D, wout, view(output_), nullptr, V, logits);
  const double loss = kernels::cross_entropy(pool, logits, targets, rows, V, logits, grad_scale);

  // Backward. logits now holds dlogits.
  float* dxn = arena.alloc(rows * D);
  layers::linear_backward(ctx, xn, logits, rows, D, wout, view(output_), V, dxn, false, grad(output_), nullptr);
  float* dx = arena.alloc_zero(rows * D);
  layers::norm_backward(ctx, fn, {grad(out_norm_w_), grad(out_norm_b_)}, x, dxn, rows, mean, rstd, dx);
  // The head's own tensors follow the blocks' (a tied output matrix is the token embedding,
  // complete only at the end); block b's and everything after them are complete once b's
  // backward has run.
  const auto& tlist = layout_.tensors();
  auto first_offset = [&](size_t index) { return index < tlist.size() ? tlist[index].offset : layout_.total(); };
  if (grads_final_from) {
    size_t head = 0;
    for (size_t i = 0; i < tlist.size(); ++i)
      if (tlist[i].block >= 0) head = i + 1;
    grads_final_from(first_offset(head));
  }
  const layers::Weights w{params_.data(), grads(), views_.empty() ? nullptr : views_.data(),
                          frozen_.empty() ? nullptr : frozen_.data(), adapters_.empty() ? nullptr : adapters_.data()};
  layers::Pass pass;
  pass.batch = batch;
  pass.seq_len = seq_len;
  pass.save = true;
  // Below the lowest block that trains (when the embeddings are frozen) no gradient is needed.
  const auto& tensors = layout_.tensors();
  const bool embeddings_train = grad(token_) || grad(position_);
  size_t lowest = blocks_.blocks.size();
  if (embeddings_train) lowest = 0;
  for (const auto& t : tensors)
    if (t.trainable && t.block >= 0) lowest = std::min(lowest, static_cast<size_t>(t.block));
  for (size_t b = blocks_.blocks.size(); b-- > lowest;) {
    const int64_t m = arena.mark();
    blocks_.blocks[b]->backward(ctx, w, pass, dx);
    arena.rewind(m);
    if (grads_final_from) grads_final_from(first_offset(static_cast<size_t>(layout_.block_first(static_cast<int>(b)))));
  }
  if (embeddings_train && ctx.seq_parallel) {
    const dist::RingLayout lay = ctx.seq_parallel->layout();
    for (int64_t b = 0; b < batch; ++b)
      for (int which = 0; which < 2; ++which) {
        const int64_t row = b * seq_len + which * lay.chunk();
        layers::embedding_backward(ctx, {grad(token_), grad(position_)}, tokens + row, 1, lay.chunk(),
                                   lay.chunk_start(lay.rank, which), dx + row * D);
      }
  } else if (embeddings_train) {
    layers::embedding_backward(ctx, {grad(token_), grad(position_)}, tokens, batch, seq_len, 0, dx);
  }
  if (grads_final_from) grads_final_from(0);
  return loss;
}

double Model::forward_loss(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                           int64_t batch, int64_t seq_len) {
  const int64_t rows = batch * seq_len, V = config_.vocab_size;
  arena.reserve(infer_arena_floats(rows, rows) + rows * V);
  arena.reset();
  float* logits = arena.alloc(rows * V);
  forward_logits(pool, arena, tokens, batch, seq_len, logits);
  return kernels::cross_entropy(pool, logits, targets, rows, V, nullptr, 0.0f);
}

void Model::forward_logits(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                           float* logits) {
  CHECK(seq_len <= config_.ctx);
  CHECK_MSG(!config_.encoder, "an encoder has no logits");
  const int64_t rows = batch * seq_len, D = config_.model_dim;
  const int64_t need = infer_arena_floats(rows, rows);
  if (arena.capacity() - arena.used() < need) {
    CHECK_MSG(arena.used() == 0, "forward_logits: arena too small");
    arena.reserve(need);
  }
  const int64_t m = arena.mark();
  const auto ctx = context(pool, arena);
  float* x = run_blocks(ctx, tokens, batch, seq_len, {}, nullptr, false);
  float* xn = arena.alloc(rows * D);
  layers::norm_forward(ctx, {param(out_norm_w_), param(out_norm_b_)}, x, rows, xn, nullptr, nullptr);
  project_output(ctx, xn, rows, logits);
  arena.rewind(m);
}

void Model::forward_hidden(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                           float* hidden) {
  CHECK(seq_len <= config_.ctx);
  const int64_t rows = batch * seq_len, D = config_.model_dim;
  const int64_t need = infer_arena_floats(rows, rows);
  if (arena.capacity() - arena.used() < need) {
    CHECK_MSG(arena.used() == 0, "forward_hidden: arena too small");
    arena.reserve(need);
  }
  const int64_t m = arena.mark();
  const auto ctx = context(pool, arena);
  float* x = run_blocks(ctx, tokens, batch, seq_len, {}, nullptr, false);
  if (out_norm_w_ >= 0)
    layers::norm_forward(ctx, {param(out_norm_w_), param(out_norm_b_)}, x, rows, hidden, nullptr, nullptr);
  else
    std::copy(x, x + rows * D, hidden);
  arena.rewind(m);
}

Expected<kvcache::KvCache> Model::make_cache(int64_t capacity, const CacheOptions& o) const {
  auto geo = kvcache::make_geometry(kv_slots(blocks_), o.k_type, o.v_type, o.page_rows);
  if (!geo.ok()) return geo.status();
  const int64_t ubatch = o.ubatch > 0 ? std::min(o.ubatch, capacity) : capacity;
  auto pool = std::make_shared<kvcache::KvPool>(geo->block_bytes(),
                                                geo->max_blocks(capacity, ubatch) * o.sequences + o.extra_blocks);
  return kvcache::KvCache(std::move(pool), std::make_shared<const kvcache::KvGeometry>(std::move(*geo)), capacity);
}

Status Model::shift_cache(kvcache::KvCache& cache, int64_t keep, int64_t discard, int64_t n) const {
  if (config_.pos == PosType::kLearned)
    return Status::Error("context shift needs RoPE or ALiBi positions (this model's positions are learned)");
  std::function<void(int, float*, int64_t)> rotate;
  if (config_.pos == PosType::kRope)
    rotate = [&](int s, float* rows, int64_t count) {
      const auto& slot = cache.geometry().slots[s];
      const int64_t kvd = slot.kv_heads * slot.head_dim;
      // Each row turns by -discard (rotation angles are linear in the position); a YaRN
      // magnitude applied again is taken back out.
      rope().apply(ThreadPool::global(), rows, count, 1, static_cast<int>(slot.kv_heads), kvd, discard, true);
      if (rope().magnitude() != 1.0f) kernels::vec_scale(rows, 1.0f / rope().magnitude(), count * kvd);
    };
  return cache.shift(keep, discard, n, rotate);
}

Status Model::forward_cached(ThreadPool& pool, Arena& arena, kvcache::KvCache& cache, const int32_t* tokens,
                             int64_t n, int64_t pos0, float* logits, bool all_rows) {
  if (config_.encoder) return Status::Error("an encoder model does not generate text");
  CHECK(pos0 + n <= cache.capacity() && pos0 + n <= config_.ctx);
  CHECK(cache.n_slots() == kv_slot_count_);
  LONGCTX_RETURN_IF_ERROR(cache.prepare(pos0, n));
  const int64_t D = config_.model_dim;
  arena.reserve(infer_arena_floats(n, all_rows ? n : 1));
  arena.reset();
  const auto ctx = context(pool, arena);
  const layers::SeqRows seq{0, n, pos0};
  kvcache::KvCache* caches[] = {&cache};
  float* x = run_blocks(ctx, tokens, 1, n, {&seq, 1}, caches, false);
  const int64_t first = all_rows ? 0 : n - 1, rows = n - first;
  float* xn = arena.alloc(rows * D);
  layers::norm_forward(ctx, {param(out_norm_w_), param(out_norm_b_)}, x + first * D, rows, xn, nullptr, nullptr);
  project_output(ctx, xn, rows, logits);
  return Status::Ok();
}

Status Model::forward_batch(ThreadPool& pool, Arena& arena, std::span<const SeqStep> steps, float* logits) {
  if (config_.encoder) return Status::Error("an encoder model does not generate text");
  const int64_t D = config_.model_dim, n_seq = static_cast<int64_t>(steps.size());
  if (n_seq == 0) return Status::Ok();
  std::vector<layers::SeqRows> seqs(steps.size());
  std::vector<kvcache::KvCache*> caches(steps.size());
  std::vector<int32_t> tokens;
  // Matrix products: each step's rows on the path they would take alone (qmatmul_auto_path of
  // its row count); consecutive steps on the same integer path share one product, a prompt
  // chunk on the dequantizing path has its own (its sgemm is what a pass of it alone runs).
  std::vector<layers::RowGroup> groups;
  for (size_t i = 0; i < steps.size(); ++i) {
    const SeqStep& st = steps[i];
    CHECK(st.cache && st.n > 0 && st.pos0 + st.n <= st.cache->capacity() && st.pos0 + st.n <= config_.ctx);
    CHECK(st.cache->n_slots() == kv_slot_count_);
    for (size_t j = 0; j < i; ++j) CHECK(caches[j] != st.cache);
    LONGCTX_RETURN_IF_ERROR(st.cache->prepare(st.pos0, st.n));
    const int64_t row0 = static_cast<int64_t>(tokens.size());
    seqs[i] = {row0, st.n, st.pos0};
    caches[i] = st.cache;
    tokens.insert(tokens.end(), st.tokens, st.tokens + st.n);
    const kernels::QPath path = integer_prefill_ ? kernels::QPath::kAmx : kernels::qmatmul_auto_path(st.n);
    if (!groups.empty() && path != kernels::QPath::kDequant && groups.back().path == path)
      groups.back().n += st.n;
    else
      groups.push_back({row0, st.n, path});
  }
  const int64_t rows = static_cast<int64_t>(tokens.size());
  arena.reserve(infer_arena_floats(rows, n_seq) + layers::arena_floats(n_seq * D));
  arena.reset();
  auto ctx = context(pool, arena);
  ctx.row_groups = groups;
  float* x = run_blocks(ctx, tokens.data(), 1, rows, seqs, caches.data(), false);
  // The last row of every step, normed, then one product for all of them on the path of a
  // single row (what a pass of each alone takes for its one logits row).
  float* last = arena.alloc(n_seq * D);
  float* xn = arena.alloc(n_seq * D);
  for (int64_t i = 0; i < n_seq; ++i)
    std::memcpy(last + i * D, x + (seqs[i].row0 + seqs[i].n - 1) * D, D * sizeof(float));
  layers::norm_forward(ctx, {param(out_norm_w_), param(out_norm_b_)}, last, n_seq, xn, nullptr, nullptr);
  const layers::RowGroup head{0, n_seq, integer_prefill_ ? kernels::QPath::kAmx : kernels::qmatmul_auto_path(1)};
  ctx.row_groups = {&head, 1};
  project_output(ctx, xn, n_seq, logits);
  return Status::Ok();
}

void Model::project_output(const layers::LayerContext& ctx, const float* xn, int64_t rows, float* logits) const {
  layers::project_logits(ctx, param(output_), view(output_), xn, rows, config_.vocab_size, logits);
}

}  // namespace longctx::model
