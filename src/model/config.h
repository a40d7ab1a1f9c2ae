// ModelConfig: everything that defines a decoder-only transformer, per layer where layers may
// differ, each layer's list of blocks included (layers/block.h). model/ composes the model from
// this and never branches on an architecture name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/pattern.h"
#include "core/status.h"
#include "layers/settings.h"
#include "position/rope.h"
#include "position/scheme.h"

namespace longctx::model {

// The block-level types live in layers/ (which never sees the model); the model speaks them too.
using layers::LayerConfig;
using layers::MlpType;
using layers::NormType;
using layers::mlp_name;
using layers::norm_name;
using layers::parse_mlp;
using layers::parse_norm;
using position::parse_pos;
using position::pos_name;
using position::PosType;

// How an encoder's (or an embedding model's) token states become one vector per text: the mean
// over its tokens, the first ([CLS]) token, or the last; none: not an embedding model.
enum class Pooling { kNone, kMean, kCls, kLast };
const char* pooling_name(Pooling p);
Expected<Pooling> parse_pooling(const std::string& s);  // none | mean | cls | last

struct ModelConfig {
  int vocab_size = 4096;
  int model_dim = 256;
  int ctx = 256;  // positions the model is built for (learned table size, RoPE table)
  NormType norm = NormType::kRmsNorm;
  float norm_eps = 1e-5f;
  MlpType mlp = MlpType::kSwiglu;
  bool bias = false;
  bool tied_embeddings = true;
  PosType pos = PosType::kRope;
  float rope_theta = 10000.0f;
  // RoPE frequency scaling for context extension (position/rope.h); only meaningful with kRope.
  position::RopeScaling rope_scaling;
  std::vector<LayerConfig> layers;
  // Layers that block expansion inserted (model/expand.h), ascending: what `train --train-only
  // new` trains. Saved as longctx.expansion.added_blocks.
  std::vector<int> added_layers;
  // LoRA tensors beside the targeted matrices (a run training an adapter; never in checkpoints:
  // adapters are saved as llama.cpp adapter files, model/lora.h).
  layers::LoraSettings lora;
  // Encoders (BERT): attention may see every key (no causal pattern needed), no output head;
  // token types, an embedding LayerNorm; the model's own pooling and whether vectors are
  // L2-normalised (sentence-transformers' Normalize module).
  bool encoder = false;
  int token_types = 0;
  bool embed_norm = false;
  Pooling pooling = Pooling::kNone;
  bool normalize = false;

  int n_layers() const { return static_cast<int>(layers.size()); }
  // Same settings in every layer.
  void set_uniform_layers(int n, const LayerConfig& layer) { layers.assign(n, layer); }
  // What every block reads (layers::Settings).
  layers::Settings settings() const;
  // Rejects nonsense with one clear message (heads not dividing model_dim, ctx 0, an unknown
  // block kind, two blocks of a layer declaring the same tensor, ...).
  Status validate() const;
};

// Named presets: "tiny" (4 layers, 256 dim) and "small" (6 layers, 384 dim, the benchmark model).
Expected<ModelConfig> preset(const std::string& name, int vocab_size);

}  // namespace longctx::model
