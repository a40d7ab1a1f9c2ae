// Which position scheme a model uses: none, a learned table, sinusoidal (both added to the token
// embeddings), RoPE (rotating Q and K in every attention block) or ALiBi (a score bias).
#pragma once
#include <string>

#include "core/status.h"

namespace longctx::position {

enum class PosType { kNone, kLearned, kSinusoidal, kRope, kAlibi };

const char* pos_name(PosType t);
Expected<PosType> parse_pos(const std::string& s);

}  // namespace longctx::position
