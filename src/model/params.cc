#include "model/params.h"

#include <cmath>

namespace longctx::model {

int64_t ParamLayout::add(const std::string& name, std::vector<int64_t> shape, bool decay) {
  ParamTensor t;
  t.name = name;
  t.numel = 1;
  for (int64_t d : shape) t.numel *= d;
  t.shape = std::move(shape);
  t.offset = total_;
  t.decay = decay;
  total_ += (t.numel + 15) & ~int64_t(15);
  tensors_.push_back(std::move(t));
  return tensors_.back().offset;
}

ParamLayout::ParamLayout(const ModelConfig& c) {
  const int64_t D = c.model_dim;
  const bool ln = c.norm == NormType::kLayerNorm;
  offsets_.token_embd = add("token_embd.weight", {c.vocab_size, D}, true);
  if (c.pos == PosType::kLearned) offsets_.position_embd = add("position_embd.weight", {c.ctx, D}, true);
  for (int l = 0; l < c.n_layers(); ++l) {
    const LayerConfig& lc = c.layers[l];
    const std::string p = "blk." + std::to_string(l) + ".";
    const int64_t qd = int64_t(lc.heads) * lc.head_dim, kvd = int64_t(lc.kv_heads) * lc.head_dim;
    LayerOffsets o;
    o.attn_norm_w = add(p + "attn_norm.weight", {D}, false);
    if (ln && c.bias) o.attn_norm_b = add(p + "attn_norm.bias", {D}, false);
    o.wq = add(p + "attn_q.weight", {qd, D}, true);
    if (c.bias) o.bq = add(p + "attn_q.bias", {qd}, false);
    o.wk = add(p + "attn_k.weight", {kvd, D}, true);
    if (c.bias) o.bk = add(p + "attn_k.bias", {kvd}, false);
    o.wv = add(p + "attn_v.weight", {kvd, D}, true);
    if (c.bias) o.bv = add(p + "attn_v.bias", {kvd}, false);
    o.wo = add(p + "attn_output.weight", {D, qd}, true);
    if (c.bias) o.bo = add(p + "attn_output.bias", {D}, false);
    o.ffn_norm_w = add(p + "ffn_norm.weight", {D}, false);
    if (ln && c.bias) o.ffn_norm_b = add(p + "ffn_norm.bias", {D}, false);
    if (c.mlp == MlpType::kSwiglu) {
      o.w_gate = add(p + "ffn_gate.weight", {lc.ff_dim, D}, true);
      if (c.bias) o.b_gate = add(p + "ffn_gate.bias", {lc.ff_dim}, false);
    }
    o.w_up = add(p + "ffn_up.weight", {lc.ff_dim, D}, true);
    if (c.bias) o.b_up = add(p + "ffn_up.bias", {lc.ff_dim}, false);
    o.w_down = add(p + "ffn_down.weight", {D, lc.ff_dim}, true);
    if (c.bias) o.b_down = add(p + "ffn_down.bias", {D}, false);
    offsets_.layers.push_back(o);
  }
  offsets_.output_norm_w = add("output_norm.weight", {D}, false);
  if (ln && c.bias) offsets_.output_norm_b = add("output_norm.bias", {D}, false);
  if (!c.tied_embeddings) offsets_.output = add("output.weight", {c.vocab_size, D}, true);
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

void init_params(const ModelConfig& c, const ParamLayout& layout, float* params, Rng& rng) {
  const float residual_scale = 1.0f / std::sqrt(2.0f * c.n_layers());
  for (const ParamTensor& t : layout.tensors()) {
    float* p = params + t.offset;
    const bool is_norm = t.name.find("norm.weight") != std::string::npos;
    if (is_norm) {
      for (int64_t i = 0; i < t.numel; ++i) p[i] = 1.0f;
    } else if (t.shape.size() == 1) {
      for (int64_t i = 0; i < t.numel; ++i) p[i] = 0.0f;
    } else {
      const bool out_proj = t.name.find("attn_output.weight") != std::string::npos ||
                            t.name.find("ffn_down.weight") != std::string::npos;
      const float std = 0.02f * (out_proj ? residual_scale : 1.0f);
      for (int64_t i = 0; i < t.numel; ++i) p[i] = static_cast<float>(rng.normal()) * std;
    }
  }
}

}  // namespace longctx::model
