#include "model/model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <functional>

#include "kernels/cross_entropy.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/embedding.h"
#include "position/alibi.h"
#include "quant/formats.h"

namespace longctx::model {

Model::Model(ModelConfig config) : config_(std::move(config)), layout_(config_) {
  CHECK_MSG(config_.validate().ok(), "Model: invalid config");
  params_.resize(layout_.total());
  alibi_.resize(config_.n_layers());
  if (config_.pos == PosType::kAlibi)
    for (int l = 0; l < config_.n_layers(); ++l) alibi_[l] = position::alibi_slopes(config_.layers[l].heads);
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
  if (!same) return Status::Error("with_config: the new config changes the weights' shapes");
  // Tensor by tensor, so that the never-written slots of mapped matrices stay non-resident.
  for (const auto& t : a)
    if (!mapped_bytes_.count(t.name))
      std::memcpy(m->params() + t.offset, params() + t.offset, t.numel * sizeof(float));
  m->mapped_owner_ = mapped_owner_;
  m->mapped_bytes_ = mapped_bytes_;
  m->mats_ = mats_;
  m->token_q_ = token_q_;
  m->output_q_ = output_q_;
  return m;
}

std::vector<MatrixSlot> Model::matrix_slots(const ModelConfig& c) {
  std::vector<MatrixSlot> out;
  const int64_t D = c.model_dim, V = c.vocab_size;
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    const int64_t qd = int64_t(lc.heads) * lc.head_dim, kvd = int64_t(lc.kv_heads) * lc.head_dim, F = lc.ff_dim;
    const std::string p = "blk." + std::to_string(l) + ".";
    out.push_back({p + "attn_q.weight", qd, D});
    out.push_back({p + "attn_k.weight", kvd, D});
    out.push_back({p + "attn_v.weight", kvd, D});
    out.push_back({p + "attn_output.weight", D, qd});
    if (c.mlp == MlpType::kSwiglu) out.push_back({p + "ffn_gate.weight", F, D});
    out.push_back({p + "ffn_up.weight", F, D});
    out.push_back({p + "ffn_down.weight", D, F});
  }
  out.push_back({"token_embd.weight", V, D});
  if (!c.tied_embeddings) out.push_back({"output.weight", V, D});
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

std::vector<std::string> Model::map_matrices(const TensorStore& store, const WeightMap& map) {
  std::vector<std::string> names;
  std::unordered_map<std::string, kernels::QMatrix> views;
  for (const MatrixSlot& s : matrix_slots(config_)) {
    const kernels::QMatrix q = in_place_view(store, map, s);
    if (!q.data) continue;
    views[s.name] = q;
    names.push_back(s.name);
    mapped_bytes_[s.name] = q.row_bytes * q.rows;
  }
  auto view = [&](const std::string& name) {
    auto it = views.find(name);
    return it == views.end() ? kernels::QMatrix{} : it->second;
  };
  mats_.assign(config_.n_layers(), {});
  for (int l = 0; l < config_.n_layers(); ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    layers::BlockMatrices& b = mats_[l];
    b.wq = view(p + "attn_q.weight");
    b.wk = view(p + "attn_k.weight");
    b.wv = view(p + "attn_v.weight");
    b.wo = view(p + "attn_output.weight");
    b.gate = view(p + "ffn_gate.weight");
    b.up = view(p + "ffn_up.weight");
    b.down = view(p + "ffn_down.weight");
  }
  token_q_ = view("token_embd.weight");
  output_q_ = config_.tied_embeddings ? token_q_ : view("output.weight");
  for (const auto& n : names) CHECK_MSG(layout_.find(n), "map_matrices: a mapped tensor is not in the layout");
  if (!names.empty()) mapped_owner_ = store.owner();
  return names;
}

int64_t Model::weight_bytes() const {
  int64_t n = 0;
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

void Model::zero_grads() { grads(); grads_.zero(); }

layers::LayerContext Model::context(ThreadPool& pool, Arena& arena) const {
  layers::LayerContext ctx;
  ctx.config = &config_;
  ctx.pool = &pool;
  ctx.arena = &arena;
  ctx.rope = config_.pos == PosType::kRope ? &rope() : nullptr;
  return ctx;
}

const position::Rope& Model::rope() const {
  // One table serves every layer (validate() requires one head_dim under RoPE).
  if (config_.pos == PosType::kRope && rope_.max_pos() == 0)
    rope_ = position::Rope(config_.layers[0].head_dim, config_.rope_theta, config_.ctx, config_.rope_scaling);
  return rope_;
}

const float* Model::output_weight() const {
  const auto& o = layout_.offsets();
  return params_.data() + (config_.tied_embeddings ? o.token_embd : o.output);
}

int64_t Model::train_arena_floats(int64_t batch, int64_t seq_len) const {
  const int64_t rows = batch * seq_len, D = config_.model_dim, V = config_.vocab_size;
  const int64_t slack = 16;  // alignment per allocation
  int64_t fwd = rows * D + slack, bwd_max = 0;
  for (const auto& l : config_.layers) {
    const int64_t qd = int64_t(l.heads) * l.head_dim, kvd = int64_t(l.kv_heads) * l.head_dim;
    fwd += rows * (D + 2 + 2 * qd + 2 * kvd + D) + batch * l.heads * seq_len + 9 * slack;
    fwd += rows * (D + 2 + 3 * int64_t(l.ff_dim) + D) + 7 * slack;
    bwd_max = std::max(bwd_max, rows * (2 * qd + 2 * kvd + D) + 5 * slack);
    bwd_max = std::max(bwd_max, rows * (3 * int64_t(l.ff_dim) + D) + 5 * slack);
  }
  fwd += rows * (D + 2) + rows * V + 4 * slack;  // final norm, logits
  return fwd + 2 * rows * D + bwd_max + 4 * slack;  // dx, dxn
}

int64_t infer_arena_floats(const ModelConfig& c, int64_t rows, int64_t out_rows) {
  // What run_blocks and the final norm take from the arena without saving: the hidden states in
  // two alternating buffers, one block's working set at a time (its output, the norm's rows and
  // statistics, Q/K/V and the attention output; then the MLP's), and the normed rows whose
  // logits are wanted. Each allocation is rounded up to 16 floats (the arena's alignment).
  // Logits go to the caller's buffer.
  const int64_t D = c.model_dim;
  auto a = [](int64_t n) { return (n + 15) & ~int64_t(15); };
  int64_t block = 0;
  for (const auto& l : c.layers) {
    const int64_t qd = int64_t(l.heads) * l.head_dim, kvd = int64_t(l.kv_heads) * l.head_dim, F = l.ff_dim;
    const int64_t attn = 2 * a(rows * D) + 2 * a(rows) + 2 * a(rows * qd) + 2 * a(rows * kvd);
    const int64_t mlp = 2 * a(rows * D) + 2 * a(rows) + (c.mlp == MlpType::kSwiglu ? 3 : 2) * a(rows * F);
    block = std::max(block, attn + mlp);
  }
  return 2 * a(rows * D) + block + a(out_rows * D);
}

Expected<uint32_t> parse_cache_type(const std::string& s) {
  if (s == "f32") return kF32;
  if (s == "f16") return kF16;
  if (s == "q8_0") return kQ8_0;
  return Status::Error("cache type '" + s + "' is not supported (expected f32, f16 or q8_0)");
}

Expected<MemoryPlan> plan_memory(const ModelConfig& c, int64_t weight_bytes, int64_t ctx, int64_t ubatch,
                                 uint32_t k_type, uint32_t v_type, int64_t extra_blocks) {
  auto geo = kv_geometry(c, k_type, v_type);
  if (!geo.ok()) return geo.status();
  MemoryPlan p;
  p.weights = weight_bytes;
  for (const auto& l : geo->layers) p.kv_per_token += l.k_row_bytes + l.v_row_bytes;
  p.kv = (geo->max_blocks(ctx, std::min(ubatch, ctx)) + extra_blocks) * geo->block_bytes();
  // A prefill pass keeps the logits of its last token only.
  p.scratch = (infer_arena_floats(c, std::min(ubatch, ctx), 1) + c.vocab_size) * int64_t(sizeof(float));
  if (c.pos == PosType::kRope) p.positions = position::Rope::table_bytes(c.layers[0].head_dim, c.ctx);
  return p;
}

int64_t available_memory_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

Status check_memory(const MemoryPlan& plan) {
  const int64_t avail = available_memory_bytes();
  const int64_t need = plan.kv + plan.scratch + plan.positions;
  if (avail < 0 || need <= avail) return Status::Ok();
  auto mib = [](int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; };
  const std::string positions = plan.positions ? ", the RoPE tables " + mib(plan.positions) : "";
  return Status::Error("not enough memory: the KV cache needs " + mib(plan.kv) + " (" +
                       std::to_string(plan.kv_per_token) + " bytes per token)" + positions + " and the scratch " +
                       mib(plan.scratch) + ", but " + mib(avail) + " are available (weights: " + mib(plan.weights) +
                       " already loaded); use a smaller --ctx");
}

float* Model::run_blocks(const layers::LayerContext& ctx, const int32_t* tokens, int64_t batch, int64_t seq_len,
                         int64_t pos0, KvCache* cache, bool save) {
  const int64_t rows = batch * seq_len, D = config_.model_dim;
  const auto& o = layout_.offsets();
  const float* P = params_.data();
  Arena& arena = *ctx.arena;
  float* x = arena.alloc(rows * D);
  layers::embedding_forward(ctx, {P + o.token_embd, o.position_embd >= 0 ? P + o.position_embd : nullptr},
                            save ? nullptr : &token_q_, tokens, batch, seq_len, pos0, x);
  if (save) {
    attn_saved_.assign(config_.n_layers(), {});
    ffn_saved_.assign(config_.n_layers(), {});
  }
  // Without saving, the hidden states alternate between two buffers and each block's
  // temporaries are released as soon as it is done: the arena holds one block at a time.
  float* other = save ? nullptr : arena.alloc(rows * D);
  std::vector<layers::KvStore> stores;
  for (int l = 0; cache && l < config_.n_layers(); ++l) stores.push_back(cache->store(l));
  for (int l = 0; l < config_.n_layers(); ++l) {
    const LayerConfig& lc = config_.layers[l];
    const int64_t m = arena.mark();
    float* x1 = arena.alloc(rows * D);
    layers::attention_forward(ctx, lc, layers::AttentionParams<const float*>::at(P, o.layers[l]),
                              save ? nullptr : mats(l), alibi_[l].empty() ? nullptr : alibi_[l].data(), x, batch, seq_len, pos0,
                              cache ? &stores[l] : nullptr, x1, save ? &attn_saved_[l] : nullptr);
    float* x2 = arena.alloc(rows * D);
    layers::feed_forward_forward(ctx, lc, layers::FeedForwardParams<const float*>::at(P, o.layers[l]),
                                 save ? nullptr : mats(l), x1, rows, x2,
                                 save ? &ffn_saved_[l] : nullptr);
    if (!save) {
      std::memcpy(other, x2, rows * D * sizeof(float));
      arena.rewind(m);
      x2 = other;
      other = x;
    }
    x = x2;
  }
  return x;
}

double Model::forward_backward(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                               int64_t batch, int64_t seq_len, float grad_scale) {
  CHECK(seq_len <= config_.ctx);
  CHECK_MSG(!has_mapped_weights(), "training needs the fp32 weights (load the model with keep_quantized off)");
  const int64_t rows = batch * seq_len, D = config_.model_dim, V = config_.vocab_size;
  arena.reserve(train_arena_floats(batch, seq_len));
  arena.reset();
  const auto ctx = context(pool, arena);
  const auto& o = layout_.offsets();
  const float* P = params_.data();
  float* G = grads();

  float* x = run_blocks(ctx, tokens, batch, seq_len, 0, nullptr, true);
  float* xn = arena.alloc(rows * D);
  float* mean = arena.alloc(rows);
  float* rstd = arena.alloc(rows);
  layers::NormParams<const float*> fn{P + o.output_norm_w, o.output_norm_b >= 0 ? P + o.output_norm_b : nullptr};
  layers::norm_forward(ctx, fn, x, rows, xn, mean, rstd);
  float* logits = arena.alloc(rows * V);
  const float* wout = output_weight();
  kernels::gemm(pool, false, true, rows, V, D, 1.0f, xn, D, wout, D, 0.0f, logits, V);
  const double loss = kernels::cross_entropy(pool, logits, targets, rows, V, logits, grad_scale);

  // Backward. logits now holds dlogits.
  float* g_out = G + (config_.tied_embeddings ? o.token_embd : o.output);
  float* dxn = arena.alloc(rows * D);
  kernels::linear_backward(pool, xn, logits, rows, D, wout, V, dxn, false, g_out, nullptr);
  float* dx = arena.alloc_zero(rows * D);
  layers::norm_backward(ctx, fn, {G + o.output_norm_w, o.output_norm_b >= 0 ? G + o.output_norm_b : nullptr}, x,
                        dxn, rows, mean, rstd, dx);
  for (int l = config_.n_layers() - 1; l >= 0; --l) {
    const LayerConfig& lc = config_.layers[l];
    const int64_t m = arena.mark();
    layers::feed_forward_backward(ctx, lc, layers::FeedForwardParams<const float*>::at(P, o.layers[l]),
                                  layers::FeedForwardParams<float*>::at(G, o.layers[l]), ffn_saved_[l], rows, dx);
    arena.rewind(m);
    layers::attention_backward(ctx, lc, layers::AttentionParams<const float*>::at(P, o.layers[l]),
                               layers::AttentionParams<float*>::at(G, o.layers[l]),
                               alibi_[l].empty() ? nullptr : alibi_[l].data(), attn_saved_[l], batch, seq_len, dx);
    arena.rewind(m);
  }
  layers::embedding_backward(ctx, {G + o.token_embd, o.position_embd >= 0 ? G + o.position_embd : nullptr}, tokens,
                             batch, seq_len, 0, dx);
  return loss;
}

double Model::forward_loss(ThreadPool& pool, Arena& arena, const int32_t* tokens, const int32_t* targets,
                           int64_t batch, int64_t seq_len) {
  const int64_t rows = batch * seq_len, V = config_.vocab_size;
  arena.reserve(model::infer_arena_floats(config_, rows, rows) + rows * V);
  arena.reset();
  float* logits = arena.alloc(rows * V);
  forward_logits(pool, arena, tokens, batch, seq_len, logits);
  return kernels::cross_entropy(pool, logits, targets, rows, V, nullptr, 0.0f);
}

void Model::forward_logits(ThreadPool& pool, Arena& arena, const int32_t* tokens, int64_t batch, int64_t seq_len,
                           float* logits) {
  CHECK(seq_len <= config_.ctx);
  const int64_t rows = batch * seq_len, D = config_.model_dim;
  const int64_t need = model::infer_arena_floats(config_, rows, rows);
  if (arena.capacity() - arena.used() < need) {
    CHECK_MSG(arena.used() == 0, "forward_logits: arena too small");
    arena.reserve(need);
  }
  const int64_t m = arena.mark();
  const auto ctx = context(pool, arena);
  const auto& o = layout_.offsets();
  const float* P = params_.data();
  float* x = run_blocks(ctx, tokens, batch, seq_len, 0, nullptr, false);
  float* xn = arena.alloc(rows * D);
  layers::norm_forward(ctx, {P + o.output_norm_w, o.output_norm_b >= 0 ? P + o.output_norm_b : nullptr}, x, rows, xn,
                       nullptr, nullptr);
  project_output(pool, xn, rows, logits);
  arena.rewind(m);
}

KvCache Model::make_cache(int64_t capacity, const CacheOptions& o) const {
  auto geo = kv_geometry(config_, o.k_type, o.v_type, o.page_rows);
  CHECK_MSG(geo.ok(), geo.status().message().c_str());
  const int64_t ubatch = o.ubatch > 0 ? std::min(o.ubatch, capacity) : capacity;
  auto pool = std::make_shared<KvPool>(geo->block_bytes(), geo->max_blocks(capacity, ubatch) * o.sequences + o.extra_blocks);
  return KvCache(std::move(pool), std::make_shared<const KvGeometry>(std::move(*geo)), capacity);
}

Status Model::shift_cache(KvCache& cache, int64_t keep, int64_t discard, int64_t n) const {
  if (config_.pos == PosType::kLearned)
    return Status::Error("context shift needs RoPE or ALiBi positions (this model's positions are learned)");
  std::function<void(int, float*, int64_t)> rotate;
  if (config_.pos == PosType::kRope)
    rotate = [&](int l, float* rows, int64_t count) {
      const LayerConfig& lc = config_.layers[l];
      const int64_t kvd = int64_t(lc.kv_heads) * lc.head_dim;
      // Each row turns by -discard (rotation angles are linear in the position); a YaRN
      // magnitude applied again is taken back out.
      rope().apply(ThreadPool::global(), rows, count, 1, lc.kv_heads, kvd, discard, true);
      if (rope().magnitude() != 1.0f) kernels::vec_scale(rows, 1.0f / rope().magnitude(), count * kvd);
    };
  return cache.shift(keep, discard, n, rotate);
}

void Model::forward_cached(ThreadPool& pool, Arena& arena, KvCache& cache, const int32_t* tokens, int64_t n,
                           int64_t pos0, float* logits, bool all_rows) {
  CHECK(pos0 + n <= cache.capacity() && pos0 + n <= config_.ctx);
  const Status st = cache.prepare(pos0, n);
  CHECK_MSG(st.ok(), st.message().c_str());
  const int64_t D = config_.model_dim;
  arena.reserve(model::infer_arena_floats(config_, n, all_rows ? n : 1));
  arena.reset();
  const auto ctx = context(pool, arena);
  const auto& o = layout_.offsets();
  const float* P = params_.data();
  float* x = run_blocks(ctx, tokens, 1, n, pos0, &cache, false);
  const int64_t first = all_rows ? 0 : n - 1, rows = n - first;
  float* xn = arena.alloc(rows * D);
  layers::norm_forward(ctx, {P + o.output_norm_w, o.output_norm_b >= 0 ? P + o.output_norm_b : nullptr},
                       x + first * D, rows, xn, nullptr, nullptr);
  project_output(pool, xn, rows, logits);
}

void Model::project_output(ThreadPool& pool, const float* xn, int64_t rows, float* logits) const {
  const int64_t D = config_.model_dim, V = config_.vocab_size;
  if (output_q_.data)
    kernels::qlinear_forward(pool, xn, rows, output_q_, nullptr, logits);
  else
    kernels::gemm(pool, false, true, rows, V, D, 1.0f, xn, D, output_weight(), D, 0.0f, logits, V);
}

}  // namespace longctx::model
