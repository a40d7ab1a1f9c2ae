// Changes to a model config asked for by name: the architecture settings a user gives when
// training (`longctx train --preset tiny --pos alibi --kv-heads 2 --attn window:128,causal ...`),
// turned into a ModelConfig in one place. Settings are named as ModelConfig names them (preset,
// pos, norm, mlp, kv_heads, layers, attn, rope_scaling); errors name the setting, and the CLI
// adds its flag.
#pragma once
#include <string>
#include <vector>

#include "core/status.h"
#include "model/config.h"

namespace longctx::model {

struct ConfigOverrides {
  std::string preset;                              // "" : none (start from a given config)
  std::string pos, norm, mlp, attn, rope_scaling;  // "" : unchanged
  // CoLT5 conditional computation in every layer (apply_colt5): "" : unchanged.
  std::string colt5;
  int kv_heads = 0, layers = 0;                    // 0 : unchanged
  bool any_architecture() const {
    return !preset.empty() || !pos.empty() || !norm.empty() || !mlp.empty() || kv_heads > 0 || layers > 0 ||
           !colt5.empty();
  }
};

// Applies every given setting but the preset to c (the layer count first, so the other settings
// reach every layer; --attn's list repeats over the layers). A yarn scaling without its original
// context gets `yarn_original_ctx` (the context being extended). Errors name the setting; c is
// then unchanged. Validates the result.
Status apply_overrides(const ConfigOverrides& o, int yarn_original_ctx, ModelConfig* c);

// CoLT5 in the layers of c: "ffn=light:256,heavy:2048,route:1/16" makes each layer's
// feed_forward block a routed_feed_forward one with those arguments (layers/routed_feed_forward.h),
// "attn=window:128,light_heads:2,route_q:1/16,route_kv:1/8" each attention block a
// routed_attention one (layers/routed_attention.h); parts are separated by ';'. A part's
// layers:A-B (or layers:N) limits it to those layers (from 0), so later parts can configure
// layers differently. Errors name the part; c is then unchanged.
Status apply_colt5(const std::string& spec, ModelConfig* c);
// Every layer's blocks, or "per layer" when they differ ("attention+routed_feed_forward:...").
std::string blocks_summary(const ModelConfig& c);

// A fresh model: the preset (o.preset, "tiny" when empty) for this vocabulary and context, then
// the overrides (yarn's original context: ctx).
Expected<ModelConfig> config_from_overrides(const ConfigOverrides& o, int vocab_size, int ctx);

// A setting that would change an existing model (a checkpoint being resumed): what was asked and
// what the model has ("kv_heads 4"; for a preset, its shape).
struct Conflict {
  std::string setting, asked, has;
};
// The settings of o that disagree with c; none when every given setting already holds (a preset
// agrees when the checkpoint has its shape, whatever its vocabulary and context). Error for a
// setting that does not parse.
Expected<std::vector<Conflict>> conflicts(const ConfigOverrides& o, const ModelConfig& c);

// The shortest prefix of the layers' patterns that repeats cyclically to give all of them: the
// attn setting that rebuilds this stack ("window:128,causal" for an alternating one).
std::string pattern_summary(const ModelConfig& c);

}  // namespace longctx::model
