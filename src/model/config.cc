#include "model/config.h"

#include "model/blocks.h"

#include <cmath>
#include <string>

namespace longctx::model {

layers::Settings ModelConfig::settings() const {
  layers::Settings s;
  s.model_dim = model_dim;
  s.norm = norm;
  s.norm_eps = norm_eps;
  s.mlp = mlp;
  s.bias = bias;
  s.pos = pos;
  s.n_layers = n_layers();
  s.lora = lora;
  s.token_types = token_types;
  s.embed_norm = embed_norm;
  s.output_head = !encoder;
  return s;
}

const char* pooling_name(Pooling p) {
  switch (p) {
    case Pooling::kMean: return "mean";
    case Pooling::kCls: return "cls";
    case Pooling::kLast: return "last";
    case Pooling::kNone: break;
  }
  return "none";
}

Expected<Pooling> parse_pooling(const std::string& s) {
  for (Pooling p : {Pooling::kNone, Pooling::kMean, Pooling::kCls, Pooling::kLast})
    if (s == pooling_name(p)) return p;
  return Status::Error("unknown pooling '" + s + "' (expected none, mean, cls or last)");
}

Status ModelConfig::validate() const {
  auto bad = [](const std::string& m) { return Status::Error("invalid model config: " + m); };
  if (vocab_size < 1 || vocab_size > (1 << 24)) return bad("vocab_size must be in [1, 16777216]");
  if (model_dim < 1 || model_dim > (1 << 16)) return bad("model_dim must be in [1, 65536]");
  if (ctx < 1 || ctx > (1 << 22)) return bad("ctx must be in [1, 4194304], got " + std::to_string(ctx));
  if (layers.empty() || layers.size() > 1024) return bad("n_layers must be in [1, 1024]");
  for (size_t i = 0; i < added_layers.size(); ++i)
    if (added_layers[i] < 0 || added_layers[i] >= n_layers() || (i > 0 && added_layers[i] <= added_layers[i - 1]))
      return bad("added layers must be distinct layer numbers below " + std::to_string(n_layers()) + ", ascending");
  if (!(norm_eps > 0.0f) || norm_eps > 1.0f) return bad("norm_eps must be in (0, 1]");
  if (!(rope_theta > 1.0f)) return bad("rope_theta must be > 1");
  if (token_types < 0 || token_types > 1024) return bad("token_types must be in [0, 1024]");
  if (embed_norm && norm != NormType::kLayerNorm) return bad("an embedding norm needs norm = layernorm");
  if (encoder && lora.rank > 0) return bad("LoRA on an encoder is not supported");
  if (pos == PosType::kSinusoidal && model_dim % 2) return bad("sinusoidal positions need an even model_dim");
  if (rope_scaling.type != position::RopeScalingType::kNone) {
    // Rope's constructor CHECKs these; a config from a file or the command line must fail here.
    const position::RopeScaling& rs = rope_scaling;
    const std::string at = "rope scaling '" + position::format_rope_scaling(rs) + "': ";
    if (pos != PosType::kRope) return bad(at + "needs pos = rope, got " + pos_name(pos));
    if (!std::isfinite(rs.factor) || rs.factor < 1.0f) return bad(at + "factor must be finite and >= 1");
    if (rs.type == position::RopeScalingType::kYarn) {
      if (rs.original_ctx < 1 || rs.original_ctx > ctx)
        return bad(at + "yarn needs the original context in [1, ctx = " + std::to_string(ctx) + "], got " +
                   std::to_string(rs.original_ctx));
      if (!std::isfinite(rs.beta_fast) || !std::isfinite(rs.beta_slow) || !(rs.beta_fast > rs.beta_slow))
        return bad(at + "yarn needs finite beta_fast > beta_slow");
      if (!std::isfinite(rs.attn_factor) || rs.attn_factor < 0.0f)
        return bad(at + "yarn attn_factor must be finite and >= 0 (0 = default)");
    }
  }
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerConfig& l = layers[i];
    const std::string at = "layer " + std::to_string(i) + ": ";
    if (l.heads < 1 || l.heads > 4096) return bad(at + "heads must be in [1, 4096]");
    if (l.kv_heads < 1 || l.heads % l.kv_heads) return bad(at + "kv_heads (" + std::to_string(l.kv_heads) +
                                                          ") must divide heads (" + std::to_string(l.heads) + ")");
    if (l.head_dim < 1 || l.head_dim > 4096) return bad(at + "head_dim must be in [1, 4096]");
    if (pos == PosType::kRope && l.head_dim % 2) return bad(at + "RoPE needs an even head_dim");
    if (pos == PosType::kRope && l.head_dim != layers[0].head_dim)
      return bad(at + "RoPE needs the same head_dim in every layer");
    if (l.ff_dim < 1 || l.ff_dim > (1 << 20)) return bad(at + "ff_dim must be in [1, 1048576]");
    Status ps = attention::validate_pattern(l.pattern);
    if (!ps.ok()) return bad(at + ps.message());
    if (!encoder && !attention::is_causal(l.pattern))
      return bad(at + "pattern '" + attention::format_pattern(l.pattern) +
                 "' is bidirectional; a decoder-only language model needs a causal pattern");
    if (l.blocks.empty()) return bad(at + "no blocks");
  }
  if (auto blocks = make_blocks(*this); !blocks.ok()) return bad(blocks.status().message());
  return Status::Ok();
}

Expected<ModelConfig> preset(const std::string& name, int vocab_size) {
  ModelConfig c;
  if (name == "tiny") {
    c.vocab_size = vocab_size > 0 ? vocab_size : 4096;
    c.model_dim = 256;
    c.ctx = 256;
    c.set_uniform_layers(4, LayerConfig{4, 4, 64, 1024});
  } else if (name == "small") {
    c.vocab_size = vocab_size > 0 ? vocab_size : 8192;
    c.model_dim = 384;
    c.ctx = 256;
    c.set_uniform_layers(6, LayerConfig{6, 6, 64, 1536});
    // GPT-2-style block, as in bench/torch_train.py's model.
    c.norm = NormType::kLayerNorm;
    c.mlp = MlpType::kGelu;
    c.bias = true;
    c.pos = PosType::kLearned;
  } else {
    return Status::Error("unknown preset '" + name + "' (expected tiny or small)");
  }
  return c;
}

}  // namespace longctx::model
