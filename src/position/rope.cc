// RoPE tables (cos/sin per position and pair, with the optional frequency scaling of rope.h
// folded in), the spec strings that select a scaling, and the rotation itself.
#include "position/rope.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <system_error>

#include "core/check.h"

namespace longctx::position {

const char* rope_scaling_name(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone: return "none";
    case RopeScalingType::kLinear: return "linear";
    case RopeScalingType::kNtk: return "ntk";
    case RopeScalingType::kYarn: return "yarn";
  }
  return "?";
}

Expected<RopeScaling> parse_rope_scaling(const std::string& s) {
  // Every message quotes the whole spec, then says which part is wrong.
  auto bad = [&s](const std::string& why) {
    return Status::Error("bad rope scaling '" + s + "': " + why +
                         " (expected none, linear:F, ntk:F, yarn:F or yarn:F,ORIG)");
  };
  RopeScaling out;
  if (s == "none") return out;
  const size_t colon = s.find(':');
  const std::string name = s.substr(0, colon);
  bool known = false;
  for (RopeScalingType t : {RopeScalingType::kLinear, RopeScalingType::kNtk, RopeScalingType::kYarn}) {
    if (name == rope_scaling_name(t)) {
      out.type = t;
      known = true;
    }
  }
  if (name == "none") return bad("'none' takes no arguments");
  if (!known) return bad("unknown type '" + name + "'");
  if (colon == std::string::npos) return bad("'" + name + "' needs a factor, as in " + name + ":F");

  const std::string rest = s.substr(colon + 1);
  const size_t comma = rest.find(',');
  const std::string factor_text = rest.substr(0, comma);
  // std::from_chars: no leading whitespace or '+', no locale; the whole field must be consumed.
  float factor = 0.0f;
  const char* fb = factor_text.data();
  const char* fe = fb + factor_text.size();
  auto fr = std::from_chars(fb, fe, factor);
  if (factor_text.empty() || fr.ec != std::errc() || fr.ptr != fe || !std::isfinite(factor))
    return bad("factor '" + factor_text + "' is not a finite number");
  if (!(factor >= 1.0f)) return bad("factor '" + factor_text + "' must be >= 1");
  out.factor = factor;

  if (comma != std::string::npos) {
    const std::string ctx_text = rest.substr(comma + 1);
    if (out.type != RopeScalingType::kYarn)
      return bad("only yarn takes an original context, got '," + ctx_text + "'");
    int64_t ctx = 0;
    const char* cb = ctx_text.data();
    const char* ce = cb + ctx_text.size();
    auto cr = std::from_chars(cb, ce, ctx);
    if (ctx_text.empty() || cr.ec != std::errc() || cr.ptr != ce || ctx <= 0)
      return bad("original context '" + ctx_text + "' must be a positive integer");
    out.original_ctx = ctx;
  }
  return out;
}

std::string format_rope_scaling(const RopeScaling& scaling) {
  if (scaling.type == RopeScalingType::kNone) return "none";
  // Shortest text that reads back as the same float.
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof(buf), scaling.factor);
  CHECK(r.ec == std::errc());
  std::string out = std::string(rope_scaling_name(scaling.type)) + ":" + std::string(buf, r.ptr);
  if (scaling.type == RopeScalingType::kYarn && scaling.original_ctx > 0)
    out += "," + std::to_string(scaling.original_ctx);
  return out;
}

Rope::Rope(int head_dim, float theta, int64_t max_pos) : Rope(head_dim, theta, max_pos, RopeScaling{}) {}

Rope::Rope(int head_dim, float theta, int64_t max_pos, const RopeScaling& scaling)
    : head_dim_(head_dim), max_pos_(max_pos), scaling_(scaling) {
  CHECK(head_dim % 2 == 0);
  const RopeScalingType type = scaling.type;
  if (type != RopeScalingType::kNone)
    CHECK_MSG(std::isfinite(scaling.factor) && scaling.factor >= 1.0f, "rope: scaling factor must be finite and >= 1");
  const int half = head_dim / 2;
  const double s = scaling.factor;

  // NTK-aware: grow the base so the slowest pair slows by exactly s (rope.h). head_dim == 2 has
  // only the pair with freq 1, which no base changes.
  double base = static_cast<double>(theta);
  if (type == RopeScalingType::kNtk && head_dim > 2)
    base *= std::pow(s, static_cast<double>(head_dim) / (head_dim - 2));

  // Frequencies in double: at long positions float rounding of p * freq is visible.
  std::vector<double> freq(half);
  for (int i = 0; i < half; ++i) freq[i] = std::pow(base, -2.0 * i / head_dim);

  double magnitude = 1.0;
  if (type == RopeScalingType::kYarn) {
    CHECK_MSG(scaling.original_ctx > 0, "rope: yarn needs original_ctx > 0");
    CHECK_MSG(std::isfinite(scaling.beta_fast) && std::isfinite(scaling.beta_slow) &&
                  scaling.beta_fast > scaling.beta_slow,
              "rope: yarn needs finite beta_fast > beta_slow");
    CHECK_MSG(std::isfinite(scaling.attn_factor) && scaling.attn_factor >= 0.0f,
              "rope: yarn attn_factor must be finite and >= 0");
    const double lo = scaling.beta_slow, hi = scaling.beta_fast;
    for (int i = 0; i < half; ++i) {
      // Rotations of pair i over the trained context: many -> keep, few -> interpolate (rope.h).
      const double wavelength = 2.0 * std::numbers::pi / freq[i];
      const double rotations = static_cast<double>(scaling.original_ctx) / wavelength;
      const double gamma = std::clamp((rotations - lo) / (hi - lo), 0.0, 1.0);
      freq[i] = (1.0 - gamma) * freq[i] / s + gamma * freq[i];
    }
    magnitude = scaling.attn_factor > 0.0f ? static_cast<double>(scaling.attn_factor) : 0.1 * std::log(s) + 1.0;
  }
  magnitude_ = static_cast<float>(magnitude);
  // Position interpolation divides the position, not the frequency (pos / s exactly as in rope.h).
  const double pos_div = type == RopeScalingType::kLinear ? s : 1.0;

  cos_.resize(max_pos * half);
  sin_.resize(max_pos * half);
  for (int64_t p = 0; p < max_pos; ++p) {
    const double scaled_pos = static_cast<double>(p) / pos_div;
    for (int i = 0; i < half; ++i) {
      const double a = scaled_pos * freq[i];
      // The magnitude rides on both tables, so the inverse (sin negated) stays the transpose.
      cos_[p * half + i] = static_cast<float>(magnitude * std::cos(a));
      sin_[p * half + i] = static_cast<float>(magnitude * std::sin(a));
    }
  }
}

namespace {

void rotate_row(float* row, int heads, int head_dim, const float* c, const float* s, float sign) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    float* v = row + h * head_dim;
    for (int i = 0; i < half; ++i) {
      float a = v[2 * i], b = v[2 * i + 1];
      float si = sign * s[i];
      v[2 * i] = a * c[i] - b * si;
      v[2 * i + 1] = a * si + b * c[i];
    }
  }
}

}  // namespace

void Rope::apply(ThreadPool& pool, float* x, int64_t batch, int64_t seq_len, int heads,
                 int64_t row_stride, int64_t pos0, bool inverse) const {
  CHECK_MSG(pos0 + seq_len <= max_pos_, "rope: position past the table");
  const int half = head_dim_ / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  pool.parallel_range(batch * seq_len, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t p = pos0 + r % seq_len;
      rotate_row(x + r * row_stride, heads, head_dim_, cos_.data() + p * half, sin_.data() + p * half, sign);
    }
  });
}

void Rope::apply_at(ThreadPool& pool, float* x, int64_t rows, int heads, int64_t row_stride, const int64_t* pos,
                    bool inverse) const {
  const int half = head_dim_ / 2;
  const float sign = inverse ? -1.0f : 1.0f;
  for (int64_t r = 0; r < rows; ++r) CHECK_MSG(pos[r] >= 0 && pos[r] < max_pos_, "rope: position past the table");
  pool.parallel_range(rows, [&](int64_t r0, int64_t r1, int) {
    for (int64_t r = r0; r < r1; ++r)
      rotate_row(x + r * row_stride, heads, head_dim_, cos_.data() + pos[r] * half, sin_.data() + pos[r] * half, sign);
  });
}

}  // namespace longctx::position
