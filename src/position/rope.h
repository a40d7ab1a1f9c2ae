// Rotary position embedding (Su et al. 2021) on adjacent pairs: (x[2i], x[2i+1]) of each head is
// rotated by pos * theta^(-2i/head_dim) -- the GPT-J / GGUF llama ("normal") convention.
// The backward of a rotation is the rotation by the negative angle.
// Optional frequency scaling stretches a model past the context it was trained on (RopeScaling).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"

namespace longctx::position {

// Context extension by rescaling the rotary frequencies. With freq_i = theta^(-2i/head_dim) for
// pair i in [0, head_dim/2) and s = factor:
//
//   kNone    angle_i = pos * freq_i. factor and the rest are ignored.
//   kLinear  position interpolation (Chen et al. 2023, "Extending Context Window of LLMs via
//            Positional Interpolation"): positions are squeezed back into the trained range,
//            angle_i = (pos / s) * freq_i. Every pair slows down by the same s.
//   kNtk     "NTK-aware" scaling (bloc97, 2023): the base grows instead of the positions,
//            theta' = theta * s^(head_dim / (head_dim - 2)), freq_i from theta'. The fastest pair
//            (i = 0) is untouched and the slowest pair (i = head_dim/2 - 1) slows by exactly s.
//            With head_dim == 2 there is only the i = 0 pair, so nothing changes.
//   kYarn    "NTK-by-parts" frequencies with a magnitude correction (Peng et al. 2023, "YaRN").
//            Pair i has wavelength lambda_i = 2*pi / freq_i and turns r_i = original_ctx / lambda_i
//            times over the trained context. Pairs that turn many times (r_i >= beta_fast) encode
//            local order and keep freq_i; pairs that turn less than once-ish (r_i <= beta_slow)
//            are interpolated like kLinear (freq_i / s); in between the two are blended linearly:
//              gamma_i = clamp((r_i - beta_slow) / (beta_fast - beta_slow), 0, 1)
//              freq'_i = (1 - gamma_i) * freq_i / s + gamma_i * freq_i
//            Both cos and sin are multiplied by attn_factor (0 = the paper's default
//            0.1 * ln(s) + 1), so each rotated q and k grows by attn_factor and q.k by its square:
//            this sharpens the softmax that interpolation would otherwise flatten (YaRN eq. 22).
//            original_ctx must be > 0 (the model's training context).
//
// factor must be finite and >= 1 for every type but kNone (factor 1 reproduces the unscaled rope,
// up to rounding, except that kYarn still applies a non-default attn_factor).
enum class RopeScalingType { kNone, kLinear, kNtk, kYarn };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  float factor = 1.0f;                        // context extension factor s (1 = no scaling)
  int64_t original_ctx = 0;                   // training context; kYarn needs it (0 = unset)
  float beta_fast = 32.0f, beta_slow = 1.0f;  // kYarn ramp bounds, in rotations over original_ctx
  float attn_factor = 0.0f;                   // kYarn magnitude on cos/sin; 0 = 0.1 * ln(s) + 1
};

// "none", "linear:F", "ntk:F", "yarn:F" or "yarn:F,ORIG" (F a finite number >= 1, ORIG a positive
// integer). "yarn:F" leaves original_ctx = 0 for the caller to fill from the model's context.
// beta_fast / beta_slow / attn_factor are not part of the spec and keep their defaults.
Expected<RopeScaling> parse_rope_scaling(const std::string& s);
// The spec string parse_rope_scaling reads back to the same type, factor and original_ctx
// (factor in the shortest form that round-trips a float exactly).
std::string format_rope_scaling(const RopeScaling& scaling);
const char* rope_scaling_name(RopeScalingType type);  // "none", "linear", "ntk", "yarn"

class Rope {
 public:
  Rope() = default;
  Rope(int head_dim, float theta, int64_t max_pos);
  // CHECKs the scaling is consistent (parse_rope_scaling is where bad user input is rejected):
  // factor finite and >= 1, and for kYarn original_ctx > 0, beta_fast > beta_slow, attn_factor >= 0.
  Rope(int head_dim, float theta, int64_t max_pos, const RopeScaling& scaling);
  // x: [batch, seq_len, heads * head_dim] rows with row_stride; row t of each sequence sits at
  // position pos0 + t. inverse = rotate by -angle (the backward pass). With a kYarn magnitude
  // the forward is m * R(angle) and the inverse path m * R(-angle) is still its exact transpose.
  void apply(ThreadPool& pool, float* x, int64_t batch, int64_t seq_len, int heads, int64_t row_stride,
             int64_t pos0, bool inverse) const;
  // Rows of x [rows, heads * head_dim] (row_stride) at their own positions pos[r] (gathered
  // rows: CoLT5's routed tokens).
  void apply_at(ThreadPool& pool, float* x, int64_t rows, int heads, int64_t row_stride, const int64_t* pos,
                bool inverse) const;
  int head_dim() const { return head_dim_; }
  int64_t max_pos() const { return max_pos_; }
  const RopeScaling& scaling() const { return scaling_; }
  // The factor on cos and sin (kYarn's attn_factor, resolved; 1 otherwise).
  float magnitude() const { return magnitude_; }
  // Bytes of the cos/sin tables: max_pos * head_dim floats (table_bytes(head_dim, max_pos)).
  int64_t table_bytes() const { return static_cast<int64_t>((cos_.size() + sin_.size()) * sizeof(float)); }
  static int64_t table_bytes(int head_dim, int64_t max_pos) {
    return max_pos * head_dim * static_cast<int64_t>(sizeof(float));
  }

 private:
  int head_dim_ = 0;
  int64_t max_pos_ = 0;
  RopeScaling scaling_;
  float magnitude_ = 1.0f;
  std::vector<float> cos_, sin_;  // [max_pos, head_dim / 2], magnitude included
};

}  // namespace longctx::position
