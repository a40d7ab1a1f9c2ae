#include "layers/settings.h"

namespace longctx::layers {

const char* norm_name(NormType t) { return t == NormType::kLayerNorm ? "layernorm" : "rmsnorm"; }
const char* mlp_name(MlpType t) { return t == MlpType::kGelu ? "gelu" : "swiglu"; }

Expected<NormType> parse_norm(const std::string& s) {
  if (s == "layernorm") return NormType::kLayerNorm;
  if (s == "rmsnorm") return NormType::kRmsNorm;
  return Status::Error("unknown norm '" + s + "' (expected layernorm or rmsnorm)");
}

Expected<MlpType> parse_mlp(const std::string& s) {
  if (s == "gelu") return MlpType::kGelu;
  if (s == "swiglu") return MlpType::kSwiglu;
  return Status::Error("unknown mlp '" + s + "' (expected gelu or swiglu)");
}

std::string format_block(const BlockSpec& b) { return b.args.empty() ? b.kind : b.kind + ":" + b.args; }

std::string format_blocks(const std::vector<BlockSpec>& blocks) {
  std::string out;
  for (const BlockSpec& b : blocks) out += (out.empty() ? "" : "+") + format_block(b);
  return out;
}

Expected<std::vector<BlockSpec>> parse_blocks(const std::string& s) {
  std::vector<BlockSpec> out;
  size_t b = 0;
  for (;;) {
    const size_t e = s.find('+', b);
    const std::string item = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
    const size_t colon = item.find(':');
    BlockSpec spec{item.substr(0, colon), colon == std::string::npos ? "" : item.substr(colon + 1)};
    if (spec.kind.empty()) return Status::Error("block list '" + s + "' has an empty block kind");
    for (char c : spec.kind)
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
        return Status::Error("block kind '" + spec.kind + "' in '" + s + "' is not [a-z0-9_]+");
    out.push_back(std::move(spec));
    if (e == std::string::npos) return out;
    b = e + 1;
  }
}

std::vector<BlockSpec> default_blocks() { return {{"attention", ""}, {"feed_forward", ""}}; }

}  // namespace longctx::layers
