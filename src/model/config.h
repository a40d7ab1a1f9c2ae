// ModelConfig: everything that defines a decoder-only transformer, per layer where layers may
// differ. model/ composes layers from this and never branches on an architecture name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/pattern.h"
#include "core/status.h"
#include "position/rope.h"

namespace longctx::model {

enum class NormType { kLayerNorm, kRmsNorm };
enum class MlpType { kGelu, kSwiglu };
enum class PosType { kNone, kLearned, kSinusoidal, kRope, kAlibi };

const char* norm_name(NormType t);
const char* mlp_name(MlpType t);
const char* pos_name(PosType t);
Expected<NormType> parse_norm(const std::string& s);
Expected<MlpType> parse_mlp(const std::string& s);
Expected<PosType> parse_pos(const std::string& s);

struct LayerConfig {
  int heads = 4;
  int kv_heads = 4;
  int head_dim = 64;
  int ff_dim = 1024;
  attention::Pattern pattern = attention::Causal{};  // which keys a query sees
};

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

  int n_layers() const { return static_cast<int>(layers.size()); }
  // Same settings in every layer.
  void set_uniform_layers(int n, const LayerConfig& layer) { layers.assign(n, layer); }
  // Rejects nonsense with one clear message (heads not dividing model_dim, ctx 0, ...).
  Status validate() const;
};

// Named presets: "tiny" (4 layers, 256 dim) and "small" (6 layers, 384 dim, the benchmark model).
Expected<ModelConfig> preset(const std::string& name, int vocab_size);

}  // namespace longctx::model
