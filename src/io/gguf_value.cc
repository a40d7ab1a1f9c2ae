// What the GGUF reader and writer share (gguf.h): metadata value types, the bytes of a tensor,
// GgufValue and its one-line format.
#include <bit>
#include <cstdio>
#include <limits>

#include "core/element_type.h"
#include "io/gguf.h"
#include "io/gguf_internal.h"

namespace longctx::io {

namespace gguf_internal {

std::string quoted(const std::string& s, size_t max_len) {
  std::string out = "'";
  for (size_t k = 0; k < s.size() && k < max_len; ++k) {
    const unsigned char ch = static_cast<unsigned char>(s[k]);
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '\'') {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", ch);
      out += buf;
    }
  }
  if (s.size() > max_len) out += "...";
  return out + "'";
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}

std::string type_desc(const GgufValue& v) {
  if (v.type() == GgufType::kArray) return "array of " + gguf_type_name(v.elem_type());
  return gguf_type_name(v.type());
}

}  // namespace gguf_internal

using gguf_internal::checked_mul;
using gguf_internal::dims_string;
using gguf_internal::load_le;
using gguf_internal::sign_extend;
using gguf_internal::valid_value_type;

// ---- types ----

namespace {
// Indexed by GgufType.
constexpr const char* kTypeNames[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                      "bool", "string", "array", "u64", "i64", "f64"};
constexpr size_t kTypeSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
}  // namespace

std::string gguf_type_name(GgufType type) {
  const uint32_t t = static_cast<uint32_t>(type);
  return valid_value_type(t) ? kTypeNames[t] : "type " + std::to_string(t);
}

size_t gguf_type_size(GgufType type) {
  const uint32_t t = static_cast<uint32_t>(type);
  return valid_value_type(t) ? kTypeSizes[t] : 0;
}

bool gguf_type_is_unsigned(GgufType t) {
  return t == GgufType::kU8 || t == GgufType::kU16 || t == GgufType::kU32 || t == GgufType::kU64;
}
bool gguf_type_is_signed(GgufType t) {
  return t == GgufType::kI8 || t == GgufType::kI16 || t == GgufType::kI32 || t == GgufType::kI64;
}
bool gguf_type_is_float(GgufType t) { return t == GgufType::kF32 || t == GgufType::kF64; }

Expected<uint64_t> ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& dims) {
  const ElementTypeInfo* t = element_type_info(type);
  if (t == nullptr) return Status::Error("unknown ggml type " + std::to_string(type));
  uint64_t n = 1;
  for (size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] < 0) {
      return Status::Error("dimension " + std::to_string(k) + " is negative in " +
                           dims_string(dims));
    }
    if (!checked_mul(n, static_cast<uint64_t>(dims[k]), &n)) {
      return Status::Error("element count of dims " + dims_string(dims) + " overflows 64 bits");
    }
  }
  // ggml counts elements in int64_t.
  if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::Error("element count of dims " + dims_string(dims) + " overflows int64");
  }
  if (!dims.empty() && static_cast<uint64_t>(dims[0]) % t->block_size != 0) {
    return Status::Error("ne[0] = " + std::to_string(dims[0]) + " is not a multiple of the " +
                         t->name + " block size " + std::to_string(t->block_size));
  }
  uint64_t bytes;
  if (!checked_mul(n / t->block_size, t->block_bytes, &bytes) ||
      bytes > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Status::Error("byte size of dims " + dims_string(dims) + " overflows int64");
  }
  return bytes;
}

// ---- GgufValue ----

GgufValue GgufValue::string(std::string v) {
  GgufValue out;
  out.type_ = GgufType::kString;
  out.s_ = std::move(v);
  return out;
}

GgufValue GgufValue::array(std::vector<std::string>&& v) {
  GgufValue out;
  out.type_ = GgufType::kArray;
  out.elem_type_ = GgufType::kString;
  out.count_ = v.size();
  out.strings_ = std::move(v);
  return out;
}

GgufValue GgufValue::raw_array(GgufType elem_type, uint64_t count, std::vector<uint8_t> bytes) {
  const size_t elem_size = gguf_type_size(elem_type);
  CHECK_MSG(elem_size > 0, "raw_array needs a fixed-size element type");
  CHECK_MSG(bytes.size() / elem_size == count && bytes.size() % elem_size == 0,
            "raw_array: byte count does not match the element count");
  GgufValue out;
  out.type_ = GgufType::kArray;
  out.elem_type_ = elem_type;
  out.count_ = count;
  out.raw_ = std::move(bytes);
  return out;
}

uint64_t GgufValue::as_uint() const {
  CHECK_MSG(gguf_type_is_unsigned(type_), "GgufValue::as_uint on a non-unsigned value");
  return u_;
}
int64_t GgufValue::as_int() const {
  CHECK_MSG(gguf_type_is_signed(type_), "GgufValue::as_int on a non-signed value");
  return i_;
}
double GgufValue::as_float() const {
  CHECK_MSG(gguf_type_is_float(type_), "GgufValue::as_float on a non-float value");
  return f_;
}
bool GgufValue::as_bool() const {
  CHECK_MSG(type_ == GgufType::kBool, "GgufValue::as_bool on a non-bool value");
  return u_ != 0;
}
const std::string& GgufValue::as_string() const {
  CHECK_MSG(type_ == GgufType::kString, "GgufValue::as_string on a non-string value");
  return s_;
}
GgufType GgufValue::elem_type() const {
  CHECK_MSG(type_ == GgufType::kArray, "GgufValue::elem_type on a non-array value");
  return elem_type_;
}
uint64_t GgufValue::size() const {
  CHECK_MSG(type_ == GgufType::kArray, "GgufValue::size on a non-array value");
  return count_;
}
const std::vector<std::string>& GgufValue::strings() const {
  CHECK_MSG(type_ == GgufType::kArray && elem_type_ == GgufType::kString,
            "GgufValue::strings on a value that is not a string array");
  return strings_;
}
const std::vector<uint8_t>& GgufValue::raw() const {
  CHECK_MSG(type_ == GgufType::kArray && elem_type_ != GgufType::kString,
            "GgufValue::raw on a value that is not a numeric array");
  return raw_;
}
uint64_t GgufValue::uint_at(uint64_t i) const {
  CHECK_MSG(type_ == GgufType::kArray && gguf_type_is_unsigned(elem_type_) && i < count_,
            "GgufValue::uint_at: not an unsigned array, or index out of range");
  const size_t n = gguf_type_size(elem_type_);
  return load_le(raw_.data() + i * n, n);
}
int64_t GgufValue::int_at(uint64_t i) const {
  CHECK_MSG(type_ == GgufType::kArray && gguf_type_is_signed(elem_type_) && i < count_,
            "GgufValue::int_at: not a signed array, or index out of range");
  const size_t n = gguf_type_size(elem_type_);
  return sign_extend(load_le(raw_.data() + i * n, n), n);
}
double GgufValue::float_at(uint64_t i) const {
  CHECK_MSG(type_ == GgufType::kArray && gguf_type_is_float(elem_type_) && i < count_,
            "GgufValue::float_at: not a float array, or index out of range");
  if (elem_type_ == GgufType::kF32) {
    return std::bit_cast<float>(static_cast<uint32_t>(load_le(raw_.data() + i * 4, 4)));
  }
  return std::bit_cast<double>(load_le(raw_.data() + i * 8, 8));
}
bool GgufValue::bool_at(uint64_t i) const {
  CHECK_MSG(type_ == GgufType::kArray && elem_type_ == GgufType::kBool && i < count_,
            "GgufValue::bool_at: not a bool array, or index out of range");
  return raw_[i] != 0;
}

bool operator==(const GgufValue& a, const GgufValue& b) {
  if (a.type_ != b.type_) return false;
  if (a.type_ == GgufType::kArray) {
    return a.elem_type_ == b.elem_type_ && a.count_ == b.count_ && a.strings_ == b.strings_ &&
           a.raw_ == b.raw_;
  }
  // Floats compare by bits, so NaN equals itself and -0 differs from +0, as in the file.
  return a.u_ == b.u_ && a.i_ == b.i_ &&
         std::bit_cast<uint64_t>(a.f_) == std::bit_cast<uint64_t>(b.f_) && a.s_ == b.s_;
}

namespace {

std::string format_float(double v, bool is_f32) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), is_f32 ? "%.9g" : "%.17g", v);
  return buf;
}

std::string format_string(const std::string& s) {
  constexpr size_t kMaxChars = 256;
  std::string out = "\"";
  for (size_t k = 0; k < s.size() && k < kMaxChars; ++k) {
    const unsigned char ch = static_cast<unsigned char>(s[k]);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);  // UTF-8 passes through
    }
  }
  out += '"';
  if (s.size() > kMaxChars) out += "... (" + std::to_string(s.size()) + " bytes)";
  return out;
}

}  // namespace

std::string format_gguf_value(const GgufValue& v, size_t max_elems) {
  const GgufType t = v.type();
  if (gguf_type_is_unsigned(t)) return std::to_string(v.as_uint());
  if (gguf_type_is_signed(t)) return std::to_string(v.as_int());
  if (gguf_type_is_float(t)) return format_float(v.as_float(), t == GgufType::kF32);
  if (t == GgufType::kBool) return v.as_bool() ? "true" : "false";
  if (t == GgufType::kString) return format_string(v.as_string());
  const GgufType e = v.elem_type();
  std::string out = "[";
  const uint64_t n = v.size();
  for (uint64_t k = 0; k < n && k < max_elems; ++k) {
    if (k) out += ", ";
    if (e == GgufType::kString)
      out += format_string(v.strings()[k]);
    else if (gguf_type_is_unsigned(e))
      out += std::to_string(v.uint_at(k));
    else if (gguf_type_is_signed(e))
      out += std::to_string(v.int_at(k));
    else if (gguf_type_is_float(e))
      out += format_float(v.float_at(k), e == GgufType::kF32);
    else if (e == GgufType::kBool)
      out += v.bool_at(k) ? "true" : "false";
  }
  if (n > max_elems) out += ", ... (" + std::to_string(n) + " " + gguf_type_name(e) + ")";
  return out + "]";
}

}  // namespace longctx::io
