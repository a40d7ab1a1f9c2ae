// What blocks are built from: the model-wide settings every block reads (Settings) and one
// layer's config (LayerConfig), whose `blocks` list says which block kinds the layer runs, in
// order. model::ModelConfig holds these; layers/ never sees the model.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "attention/pattern.h"
#include "core/status.h"
#include "position/scheme.h"

namespace longctx::layers {

enum class NormType { kLayerNorm, kRmsNorm };
// kGelu: GELU's tanh approximation (GPT-2); kGeluErf: the exact erf form (BERT).
enum class MlpType { kGelu, kSwiglu, kGeluErf };

const char* norm_name(NormType t);
const char* mlp_name(MlpType t);
Expected<NormType> parse_norm(const std::string& s);
Expected<MlpType> parse_mlp(const std::string& s);

// LoRA (Hu et al. 2021) on a layer's matrices: W x + (alpha / rank) B A x with A [rank, in] and
// B [out, rank] trained, W frozen. Targets by short name: q, k, v, o (attention), gate, up,
// down (feed-forward). Written "r=16,alpha=32,targets=q,k,v,o,gate,up,down".
struct LoraSettings {
  int rank = 0;      // 0: no LoRA tensors
  float alpha = 0;   // 0: scale 1 (llama.cpp's rule)
  float dropout = 0;  // training: dropout on the LoRA branch's input (PEFT's lora_dropout)
  std::vector<std::string> targets;
  float scale() const { return rank > 0 && alpha != 0 ? alpha / static_cast<float>(rank) : 1.0f; }
  bool targets_matrix(const std::string& target) const;
};
// Errors name the bad part: unknown key or target, rank < 1 or > 4096, alpha not finite, no targets.
Expected<LoraSettings> parse_lora(const std::string& spec);
std::string format_lora(const LoraSettings& l);

struct Settings {
  int64_t model_dim = 0;
  NormType norm = NormType::kRmsNorm;
  float norm_eps = 1e-5f;
  MlpType mlp = MlpType::kSwiglu;
  bool bias = false;  // biases on every linear layer (and LayerNorm)
  position::PosType pos = position::PosType::kRope;
  int n_layers = 0;   // residual-branch output projections start scaled by 1 / sqrt(2 n_layers)
  LoraSettings lora;  // rank > 0: blocks declare LoRA A / B beside the targeted matrices
  // Encoders (BERT): rows of a token-type table added to the embeddings (0: none), a LayerNorm
  // after the embeddings, and no output head (no final norm, no vocabulary projection).
  int token_types = 0;
  bool embed_norm = false;
  bool output_head = true;
};

// One block of a layer: a registered kind (layers/block.h) and its arguments, written
// "kind" or "kind:ARGS" (ARGS are the kind's own, e.g. "key=value,key=value"; no '+').
struct BlockSpec {
  std::string kind;
  std::string args;
  bool operator==(const BlockSpec&) const = default;
};
std::string format_block(const BlockSpec& b);
// A layer's blocks joined by '+': "attention+feed_forward".
std::string format_blocks(const std::vector<BlockSpec>& blocks);
// Parses format_blocks' text (kinds are checked when the blocks are made, not here).
Expected<std::vector<BlockSpec>> parse_blocks(const std::string& s);
// The pre-norm transformer layer: attention, then feed-forward.
std::vector<BlockSpec> default_blocks();

struct LayerConfig {
  int heads = 4;
  int kv_heads = 4;
  int head_dim = 64;
  int ff_dim = 1024;
  attention::Pattern pattern = attention::Causal{};  // which keys a query sees
  std::vector<BlockSpec> blocks = default_blocks();
};

}  // namespace longctx::layers
