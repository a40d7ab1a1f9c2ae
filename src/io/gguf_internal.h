// What the GGUF reader (gguf_reader.cc), writer (gguf_writer.cc) and values (gguf_value.cc)
// share: the magic, overflow-checked arithmetic, little-endian loads and the wording of errors.
// Internal to io/.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "io/gguf.h"

namespace longctx::io::gguf_internal {

inline constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};

inline bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
inline bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
// Rounds x up to a multiple of the power of two `align`; false on overflow.
inline bool checked_align_up(uint64_t x, uint64_t align, uint64_t* out) {
  uint64_t bumped;
  if (!checked_add(x, align - 1, &bumped)) return false;
  *out = bumped & ~(align - 1);
  return true;
}
inline bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

inline uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

inline int64_t sign_extend(uint64_t v, size_t n_bytes) {
  if (n_bytes >= 8) return static_cast<int64_t>(v);
  const unsigned shift = static_cast<unsigned>(64 - 8 * n_bytes);
  return static_cast<int64_t>(v << shift) >> shift;
}

inline bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

// Names and keys come from untrusted files: quote them with control and non-ASCII bytes
// escaped and long ones cut, so an error stays one readable line.
std::string quoted(const std::string& s, size_t max_len = 128);

inline std::string u64s(uint64_t v) { return std::to_string(v); }

// "[3, 2]"
std::string dims_string(const std::vector<int64_t>& dims);

// A value's type in errors: "u32", "array of string".
std::string type_desc(const GgufValue& v);

}  // namespace longctx::io::gguf_internal
