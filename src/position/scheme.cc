#include "position/scheme.h"

namespace longctx::position {

const char* pos_name(PosType t) {
  switch (t) {
    case PosType::kNone: return "none";
    case PosType::kLearned: return "learned";
    case PosType::kSinusoidal: return "sinusoidal";
    case PosType::kRope: return "rope";
    case PosType::kAlibi: return "alibi";
  }
  return "?";
}

Expected<PosType> parse_pos(const std::string& s) {
  for (PosType t : {PosType::kNone, PosType::kLearned, PosType::kSinusoidal, PosType::kRope, PosType::kAlibi})
    if (s == pos_name(t)) return t;
  return Status::Error("unknown position scheme '" + s + "' (expected none, learned, sinusoidal, rope or alibi)");
}

}  // namespace longctx::position
