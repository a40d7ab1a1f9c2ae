#include "layers/settings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>

namespace longctx::layers {

const char* norm_name(NormType t) { return t == NormType::kLayerNorm ? "layernorm" : "rmsnorm"; }
const char* mlp_name(MlpType t) {
  switch (t) {
    case MlpType::kGelu: return "gelu";
    case MlpType::kGeluErf: return "gelu_erf";
    case MlpType::kSwiglu: break;
  }
  return "swiglu";
}

Expected<NormType> parse_norm(const std::string& s) {
  if (s == "layernorm") return NormType::kLayerNorm;
  if (s == "rmsnorm") return NormType::kRmsNorm;
  return Status::Error("unknown norm '" + s + "' (expected layernorm or rmsnorm)");
}

Expected<MlpType> parse_mlp(const std::string& s) {
  if (s == "gelu") return MlpType::kGelu;
  if (s == "gelu_erf") return MlpType::kGeluErf;
  if (s == "swiglu") return MlpType::kSwiglu;
  return Status::Error("unknown mlp '" + s + "' (expected gelu, gelu_erf or swiglu)");
}

bool LoraSettings::targets_matrix(const std::string& target) const {
  return rank > 0 && std::find(targets.begin(), targets.end(), target) != targets.end();
}

Expected<LoraSettings> parse_lora(const std::string& spec) {
  static const char* kTargets[] = {"q", "k", "v", "o", "gate", "up", "down"};
  auto bad = [&](const std::string& m) {
    return Status::Error("--lora " + spec + ": " + m + " (expected r=16,alpha=32,targets=q,k,v,o,gate,up,down)");
  };
  LoraSettings l;
  bool in_targets = false;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? spec.size() + 1 : comma + 1;
    const size_t eq = item.find('=');
    std::string key = eq == std::string::npos ? "" : item.substr(0, eq), value = eq == std::string::npos ? item : item.substr(eq + 1);
    if (key.empty() && in_targets) key = "targets";
    in_targets = key == "targets";
    try {
      size_t used = 0;
      if (key == "r" || key == "rank") {
        const long v = std::stol(value, &used);
        if (used != value.size() || v < 1 || v > 4096) return bad("rank must be a whole number in [1, 4096]");
        l.rank = static_cast<int>(v);
      } else if (key == "alpha") {
        const float v = std::stof(value, &used);
        if (used != value.size() || !std::isfinite(v) || v < 0) return bad("alpha must be a number >= 0");
        l.alpha = v;
      } else if (key == "targets") {
        if (std::find(std::begin(kTargets), std::end(kTargets), value) == std::end(kTargets))
          return bad("unknown target '" + value + "'");
        if (std::find(l.targets.begin(), l.targets.end(), value) == l.targets.end()) l.targets.push_back(value);
      } else {
        return bad("unknown item '" + item + "'");
      }
    } catch (const std::exception&) {
      return bad("'" + item + "' is not a number");
    }
  }
  if (l.rank < 1) return bad("the rank r is missing");
  if (l.targets.empty()) return bad("no targets");
  return l;
}

std::string format_lora(const LoraSettings& l) {
  std::string s = "r=" + std::to_string(l.rank) + ",alpha=";
  char a[32];
  std::snprintf(a, sizeof a, "%g", l.alpha);
  s += a;
  s += ",targets=";
  for (size_t i = 0; i < l.targets.size(); ++i) s += (i ? "," : "") + l.targets[i];
  return s;
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
