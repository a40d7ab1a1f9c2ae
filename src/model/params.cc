#include "model/params.h"

#include <cmath>

#include "layers/embedding.h"
#include "layers/output_head.h"

namespace longctx::model {

void ParamLayout::add(const std::string& name, const layers::TensorDecl& d, int block, int layer) {
  ParamTensor t;
  t.name = name;
  t.numel = 1;
  for (int64_t v : d.shape) t.numel *= v;
  t.shape = d.shape;
  t.offset = total_;
  t.type = d.type;
  t.trainable = d.trainable;
  t.decay = d.decay;
  t.init = d.init;
  t.in_place = d.in_place;
  t.branch_out = d.branch_out;
  t.init_value = d.init_value;
  t.statistic = d.statistic;
  t.block = block;
  t.layer = layer;
  total_ += (t.numel + 15) & ~int64_t(15);
  tensors_.push_back(std::move(t));
}

ParamLayout::ParamLayout(const ModelConfig& c) : ParamLayout(c, [&] {
  auto b = make_blocks(c);
  CHECK_MSG(b.ok(), b.status().message().c_str());
  return std::move(*b);
}()) {}

ParamLayout::ParamLayout(const ModelConfig& c, const ModelBlocks& blocks) {
  const layers::Settings s = c.settings();
  for (const auto& d : layers::embedding_tensors(s, c.vocab_size, c.ctx)) add(d.name, d, -1, -1);
  for (size_t b = 0; b < blocks.blocks.size(); ++b) {
    block_first_.push_back(static_cast<int64_t>(tensors_.size()));
    const std::string prefix = "blk." + std::to_string(blocks.layer[b]) + ".";
    for (const auto& d : blocks.blocks[b]->tensors()) add(prefix + d.name, d, static_cast<int>(b), blocks.layer[b]);
  }
  for (const auto& d : layers::head_tensors(s, c.vocab_size, c.tied_embeddings)) add(d.name, d, -1, -1);
}

std::vector<int64_t> ParamLayout::block_offsets(int b) const {
  std::vector<int64_t> out;
  for (size_t i = block_first_[b]; i < tensors_.size() && tensors_[i].block == b; ++i) out.push_back(tensors_[i].offset);
  return out;
}

const ParamTensor* ParamLayout::find(const std::string& name) const {
  const int i = index(name);
  return i < 0 ? nullptr : &tensors_[i];
}

int ParamLayout::index(const std::string& name) const {
  for (size_t i = 0; i < tensors_.size(); ++i)
    if (tensors_[i].name == name) return static_cast<int>(i);
  return -1;
}

void init_params(const ModelConfig& c, const ParamLayout& layout, float* params, Rng& rng) {
  const float residual_scale = 1.0f / std::sqrt(2.0f * c.n_layers());
  for (const ParamTensor& t : layout.tensors()) {
    float* p = params + t.offset;
    switch (t.init) {
      case layers::Init::kZeros:
        for (int64_t i = 0; i < t.numel; ++i) p[i] = 0.0f;
        break;
      case layers::Init::kOnes:
        for (int64_t i = 0; i < t.numel; ++i) p[i] = 1.0f;
        break;
      case layers::Init::kValue:
        for (int64_t i = 0; i < t.numel; ++i) p[i] = t.init_value;
        break;
      case layers::Init::kLoraA: {
        const double bound = 1.0 / std::sqrt(static_cast<double>(t.shape.at(1)));
        for (int64_t i = 0; i < t.numel; ++i) p[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
        break;
      }
      case layers::Init::kNormal:
      case layers::Init::kResidualOut: {
        const float std = 0.02f * (t.init == layers::Init::kResidualOut ? residual_scale : 1.0f);
        for (int64_t i = 0; i < t.numel; ++i) p[i] = static_cast<float>(rng.normal()) * std;
        break;
      }
    }
  }
}

}  // namespace longctx::model
