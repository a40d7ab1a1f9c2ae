#include "io/gguf.h"

#include <bit>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/element_type.h"

namespace longctx::io {
namespace {

constexpr uint32_t kMinVersion = 2;
constexpr uint32_t kMaxVersion = 3;
constexpr uint32_t kWriteVersion = 3;
constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
// The smallest possible metadata entry (empty key: 8, type: 4, a one-byte value: 1) and tensor
// info (empty name: 8, n_dims: 4, one dim: 8, type: 4, offset: 8). Counts are checked against
// these before anything is reserved, so a forged count cannot make us allocate.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;
// ggml stores tensor names in char[GGML_MAX_NAME = 64] with a terminating NUL.
constexpr size_t kMaxTensorNameWrite = 63;

bool checked_mul(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_mul_overflow(a, b, out);
}
bool checked_add(uint64_t a, uint64_t b, uint64_t* out) {
  return !__builtin_add_overflow(a, b, out);
}
// Rounds x up to a multiple of the power of two `align`; false on overflow.
bool checked_align_up(uint64_t x, uint64_t align, uint64_t* out) {
  uint64_t bumped;
  if (!checked_add(x, align - 1, &bumped)) return false;
  *out = bumped & ~(align - 1);
  return true;
}
bool is_power_of_two(uint64_t x) { return x != 0 && (x & (x - 1)) == 0; }

uint64_t load_le(const uint8_t* p, size_t n) {
  uint64_t v = 0;
  for (size_t k = 0; k < n; ++k) v |= static_cast<uint64_t>(p[k]) << (8 * k);
  return v;
}

int64_t sign_extend(uint64_t v, size_t n_bytes) {
  if (n_bytes >= 8) return static_cast<int64_t>(v);
  const unsigned shift = static_cast<unsigned>(64 - 8 * n_bytes);
  return static_cast<int64_t>(v << shift) >> shift;
}

// Names and keys come from untrusted files: quote them with control and non-ASCII bytes
// escaped and long ones cut, so an error stays one readable line.
std::string quoted(const std::string& s, size_t max_len = 128) {
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

std::string u64s(uint64_t v) { return std::to_string(v); }

// A bounds-checked little-endian reader over the file bytes. Every read either succeeds or reads
// nothing and returns false; callers turn false into an error that says what was being read.
class Cursor {
 public:
  Cursor(const uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint64_t pos() const { return pos_; }
  uint64_t left() const { return size_ - pos_; }

  bool read_uint(size_t n, uint64_t* out) {
    if (left() < n) return false;
    *out = load_le(data_ + pos_, n);
    pos_ += n;
    return true;
  }
  bool u32(uint32_t* out) {
    uint64_t v;
    if (!read_uint(4, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
  }
  bool u64(uint64_t* out) { return read_uint(8, out); }
  bool bytes(uint64_t n, const uint8_t** out) {
    if (left() < n) return false;
    *out = data_ + pos_;
    pos_ += n;
    return true;
  }

 private:
  const uint8_t* data_;
  uint64_t size_;
  uint64_t pos_ = 0;
};

Status truncated(const Cursor& c, const std::string& what) {
  return Status::Error("truncated file: " + what + " at offset " + u64s(c.pos()) +
                       " runs past the end (" + u64s(c.left()) + " bytes left)");
}

// A GGUF string: u64 length, then the bytes. The length is checked against what is left before
// anything is allocated.
Status read_string(Cursor& c, const std::string& what, std::string* out) {
  uint64_t len;
  if (!c.u64(&len)) return truncated(c, "the length of " + what);
  if (len > c.left()) {
    return Status::Error(what + ": string length " + u64s(len) +
                         " runs past the end of the file (" + u64s(c.left()) + " bytes left)");
  }
  const uint8_t* p = nullptr;
  c.bytes(len, &p);
  out->assign(reinterpret_cast<const char*>(p), static_cast<size_t>(len));
  return Status::Ok();
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::kF64); }

// A fixed-size scalar from its little-endian bits, and back.
GgufValue scalar_from_bits(GgufType type, uint64_t bits) {
  switch (type) {
    case GgufType::kU8:
      return GgufValue::scalar(static_cast<uint8_t>(bits));
    case GgufType::kU16:
      return GgufValue::scalar(static_cast<uint16_t>(bits));
    case GgufType::kU32:
      return GgufValue::scalar(static_cast<uint32_t>(bits));
    case GgufType::kI8:
      return GgufValue::scalar(static_cast<int8_t>(sign_extend(bits, 1)));
    case GgufType::kI16:
      return GgufValue::scalar(static_cast<int16_t>(sign_extend(bits, 2)));
    case GgufType::kI32:
      return GgufValue::scalar(static_cast<int32_t>(sign_extend(bits, 4)));
    case GgufType::kI64:
      return GgufValue::scalar(static_cast<int64_t>(bits));
    case GgufType::kF32:
      return GgufValue::scalar(std::bit_cast<float>(static_cast<uint32_t>(bits)));
    case GgufType::kF64:
      return GgufValue::scalar(std::bit_cast<double>(bits));
    case GgufType::kBool:
      return GgufValue::scalar(bits != 0);
    default:
      return GgufValue::scalar(bits);  // u64
  }
}

uint64_t bits_of_scalar(const GgufValue& v) {
  const GgufType t = v.type();
  if (gguf_type_is_unsigned(t)) return v.as_uint();
  if (gguf_type_is_signed(t)) return static_cast<uint64_t>(v.as_int());  // low bytes are written
  if (t == GgufType::kF32) return std::bit_cast<uint32_t>(static_cast<float>(v.as_float()));
  if (t == GgufType::kF64) return std::bit_cast<uint64_t>(v.as_float());
  return v.as_bool() ? 1 : 0;
}

Status read_value(Cursor& c, GgufType type, const std::string& key, GgufValue* out) {
  const std::string where = "key " + quoted(key);
  switch (type) {
    case GgufType::kU8:
    case GgufType::kU16:
    case GgufType::kU32:
    case GgufType::kU64:
    case GgufType::kI8:
    case GgufType::kI16:
    case GgufType::kI32:
    case GgufType::kI64:
    case GgufType::kF32:
    case GgufType::kF64:
    case GgufType::kBool: {
      uint64_t bits;
      if (!c.read_uint(gguf_type_size(type), &bits)) return truncated(c, "the value of " + where);
      // The spec calls a bool other than 0 or 1 invalid; accepting it would hide a corrupt file.
      if (type == GgufType::kBool && bits > 1) {
        return Status::Error(where + ": invalid bool value " + u64s(bits));
      }
      *out = scalar_from_bits(type, bits);
      return Status::Ok();
    }
    case GgufType::kString: {
      std::string s;
      LONGCTX_RETURN_IF_ERROR(read_string(c, "the value of " + where, &s));
      *out = GgufValue::string(std::move(s));
      return Status::Ok();
    }
    case GgufType::kArray: {
      uint32_t elem_raw;
      if (!c.u32(&elem_raw)) return truncated(c, "the array element type of " + where);
      if (!valid_value_type(elem_raw)) {
        return Status::Error(where + ": unknown array element type " + u64s(elem_raw));
      }
      const GgufType elem = static_cast<GgufType>(elem_raw);
      if (elem == GgufType::kArray) {
        return Status::Error(where + ": nested arrays are not supported");
      }
      uint64_t count;
      if (!c.u64(&count)) return truncated(c, "the array length of " + where);
      // Each element takes at least its fixed size, or 8 bytes (the length) for a string.
      const uint64_t min_elem = elem == GgufType::kString ? 8 : gguf_type_size(elem);
      if (count > c.left() / min_elem) {
        return Status::Error(where + ": array length " + u64s(count) +
                             " cannot fit in the rest of the file (" + u64s(c.left()) +
                             " bytes left)");
      }
      if (elem == GgufType::kString) {
        std::vector<std::string> strings;
        strings.reserve(static_cast<size_t>(count));
        for (uint64_t k = 0; k < count; ++k) {
          std::string s;
          LONGCTX_RETURN_IF_ERROR(read_string(c, "element " + u64s(k) + " of " + where, &s));
          strings.push_back(std::move(s));
        }
        *out = GgufValue::array(std::move(strings));
        return Status::Ok();
      }
      const uint64_t n_bytes = count * min_elem;  // cannot overflow: count <= left / min_elem
      const uint8_t* p = nullptr;
      c.bytes(n_bytes, &p);
      if (elem == GgufType::kBool) {
        for (uint64_t k = 0; k < count; ++k) {
          if (p[k] > 1) {
            return Status::Error(where + ": invalid bool value " + u64s(p[k]) + " at index " +
                                 u64s(k));
          }
        }
      }
      *out = GgufValue::raw_array(elem, count, std::vector<uint8_t>(p, p + n_bytes));
      return Status::Ok();
    }
  }
  return Status::Error(where + ": unknown value type " + u64s(static_cast<uint32_t>(type)));
}

std::string dims_string(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k) s += (k ? ", " : "") + std::to_string(dims[k]);
  return s + "]";
}

}  // namespace

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

// ---- GgufFile ----

Expected<GgufFile> GgufFile::open(const std::string& path) {
  Expected<MappedFile> mapped = MappedFile::open(path);
  if (!mapped.ok()) return mapped.status().Wrap("gguf");
  GgufFile f;
  f.path_ = path;
  f.mapped_ = std::move(mapped).value();
  f.bytes_ = f.mapped_.data();
  f.size_ = f.mapped_.size();
  Status st = f.parse();
  if (!st.ok()) return st.Wrap("gguf: " + path);
  return f;
}

Expected<GgufFile> GgufFile::from_bytes(std::vector<uint8_t> bytes) {
  GgufFile f;
  f.owned_ = std::move(bytes);
  f.bytes_ = f.owned_.data();
  f.size_ = f.owned_.size();
  Status st = f.parse();
  if (!st.ok()) return st.Wrap("gguf");
  return f;
}

Status GgufFile::parse() {
  Cursor c(bytes_, size_);

  // Header.
  const uint8_t* magic = nullptr;
  if (!c.bytes(4, &magic)) {
    return Status::Error("file is " + u64s(size_) + " bytes, too short for a GGUF header");
  }
  if (std::memcmp(magic, kMagic, 4) != 0) {
    return Status::Error("bad magic " +
                         quoted(std::string(reinterpret_cast<const char*>(magic), 4)) +
                         " (expected 'GGUF'): not a GGUF file");
  }
  if (!c.u32(&version_)) return truncated(c, "the version");
  if (version_ < kMinVersion || version_ > kMaxVersion) {
    // A big-endian v3 file reads as 0x03000000 here; say so instead of "version 50331648".
    const uint32_t swapped = __builtin_bswap32(version_);
    if (swapped >= kMinVersion && swapped <= kMaxVersion) {
      return Status::Error("big-endian GGUF files are not supported");
    }
    return Status::Error("unsupported GGUF version " + u64s(version_) + " (only versions " +
                         u64s(kMinVersion) + " and " + u64s(kMaxVersion) + " are supported)");
  }
  uint64_t n_tensors, n_kv;
  if (!c.u64(&n_tensors)) return truncated(c, "the tensor count");
  if (!c.u64(&n_kv)) return truncated(c, "the metadata count");
  if (n_kv > c.left() / kMinKvBytes) {
    return Status::Error("metadata count " + u64s(n_kv) + " cannot fit in a file of " +
                         u64s(size_) + " bytes");
  }
  if (n_tensors > (c.left() - n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    return Status::Error("tensor count " + u64s(n_tensors) + " cannot fit in a file of " +
                         u64s(size_) + " bytes");
  }

  // Metadata.
  kv_.reserve(static_cast<size_t>(n_kv));
  for (uint64_t k = 0; k < n_kv; ++k) {
    GgufKv kv;
    LONGCTX_RETURN_IF_ERROR(read_string(c, "the key of metadata entry " + u64s(k), &kv.key));
    uint32_t type;
    if (!c.u32(&type)) return truncated(c, "the value type of key " + quoted(kv.key));
    if (!valid_value_type(type)) {
      return Status::Error("key " + quoted(kv.key) + ": unknown value type " + u64s(type));
    }
    LONGCTX_RETURN_IF_ERROR(read_value(c, static_cast<GgufType>(type), kv.key, &kv.value));
    if (!kv_index_.emplace(kv.key, kv_.size()).second) {
      return Status::Error("duplicate key " + quoted(kv.key));
    }
    kv_.push_back(std::move(kv));
  }

  if (const GgufValue* a = find("general.alignment")) {
    uint64_t align = 0;
    if (gguf_type_is_unsigned(a->type())) {
      align = a->as_uint();
    } else if (gguf_type_is_signed(a->type())) {
      if (a->as_int() <= 0) {
        return Status::Error("general.alignment must be a power of two, got " +
                             std::to_string(a->as_int()));
      }
      align = static_cast<uint64_t>(a->as_int());
    } else {
      return Status::Error("key 'general.alignment' has type " + gguf_type_name(a->type()) +
                           ", expected an integer");
    }
    if (!is_power_of_two(align)) {
      return Status::Error("general.alignment must be a power of two, got " + u64s(align));
    }
    alignment_ = align;
  }

  // Tensor infos.
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    LONGCTX_RETURN_IF_ERROR(read_string(c, "the name of tensor " + u64s(k), &t.name));
    const std::string where = "tensor " + quoted(t.name);
    uint32_t n_dims;
    if (!c.u32(&n_dims)) return truncated(c, "n_dims of " + where);
    if (n_dims < 1 || n_dims > static_cast<uint32_t>(kGgufMaxDims)) {
      return Status::Error(where + ": n_dims " + u64s(n_dims) + " is out of range (1.." +
                           std::to_string(kGgufMaxDims) + ")");
    }
    t.dims.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t ne;
      if (!c.u64(&ne)) return truncated(c, "dimension " + u64s(d) + " of " + where);
      if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Status::Error(where + ": dimension " + u64s(d) + " = " + u64s(ne) +
                             " does not fit in int64");
      }
      t.dims[d] = static_cast<int64_t>(ne);
    }
    if (!c.u32(&t.type)) return truncated(c, "the type of " + where);
    if (!c.u64(&t.offset)) return truncated(c, "the data offset of " + where);
    if (element_type_info(t.type) == nullptr) {
      return Status::Error(where + " has unknown ggml type " + u64s(t.type));
    }
    Expected<uint64_t> n_bytes = ggml_tensor_bytes(t.type, t.dims);
    if (!n_bytes.ok()) return n_bytes.status().Wrap(where);
    t.n_bytes = *n_bytes;
    t.n_elements = 1;
    for (int64_t d : t.dims) t.n_elements *= static_cast<uint64_t>(d);  // checked above
    if (!tensor_index_.emplace(t.name, tensors_.size()).second) {
      return Status::Error("duplicate tensor name " + quoted(t.name));
    }
    tensors_.push_back(std::move(t));
  }

  // Data section: starts at the next multiple of the alignment after the tensor infos.
  if (!checked_align_up(c.pos(), alignment_, &data_offset_)) {
    return Status::Error("data section offset overflows");
  }
  for (GgufTensorInfo& t : tensors_) {
    const std::string where = "tensor " + quoted(t.name);
    if (t.offset % alignment_ != 0) {
      return Status::Error(where + ": data offset " + u64s(t.offset) +
                           " is not a multiple of the alignment " + u64s(alignment_));
    }
    uint64_t start, end;
    if (!checked_add(data_offset_, t.offset, &start) || !checked_add(start, t.n_bytes, &end) ||
        end > size_) {
      return Status::Error(where + " data ends past the end of the file (offset " + u64s(t.offset) +
                           " + " + u64s(t.n_bytes) + " bytes after the data section at " +
                           u64s(data_offset_) + ", file is " + u64s(size_) + " bytes)");
    }
    t.data = bytes_ + start;
  }
  return Status::Ok();
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const GgufTensorInfo* GgufFile::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::key_error(const std::string& key, const std::string& problem) const {
  const std::string prefix = path_.empty() ? "gguf" : "gguf: " + path_;
  return Status::Error(prefix + ": key " + quoted(key) + " " + problem);
}

Expected<const GgufValue*> GgufFile::require(const std::string& key) const {
  const GgufValue* v = find(key);
  if (v == nullptr) return key_error(key, "not found");
  return v;
}

namespace {
std::string type_desc(const GgufValue& v) {
  if (v.type() == GgufType::kArray) return "array of " + gguf_type_name(v.elem_type());
  return gguf_type_name(v.type());
}
}  // namespace

Expected<std::string> GgufFile::get_string(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  if ((*v)->type() != GgufType::kString) {
    return key_error(key, "has type " + type_desc(**v) + ", expected string");
  }
  return (*v)->as_string();
}

Expected<uint64_t> GgufFile::get_uint(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  const GgufType t = (*v)->type();
  if (gguf_type_is_unsigned(t)) return (*v)->as_uint();
  if (gguf_type_is_signed(t)) {
    const int64_t i = (*v)->as_int();
    if (i < 0) return key_error(key, "is negative (" + std::to_string(i) + "), expected >= 0");
    return static_cast<uint64_t>(i);
  }
  return key_error(key, "has type " + type_desc(**v) + ", expected an unsigned integer");
}

Expected<int64_t> GgufFile::get_int(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  const GgufType t = (*v)->type();
  if (gguf_type_is_signed(t)) return (*v)->as_int();
  if (gguf_type_is_unsigned(t)) {
    const uint64_t u = (*v)->as_uint();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return key_error(key, "value " + u64s(u) + " does not fit in int64");
    }
    return static_cast<int64_t>(u);
  }
  return key_error(key, "has type " + type_desc(**v) + ", expected an integer");
}

Expected<double> GgufFile::get_float(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  if (!gguf_type_is_float((*v)->type())) {
    return key_error(key, "has type " + type_desc(**v) + ", expected f32 or f64");
  }
  return (*v)->as_float();
}

Expected<bool> GgufFile::get_bool(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  if ((*v)->type() != GgufType::kBool) {
    return key_error(key, "has type " + type_desc(**v) + ", expected bool");
  }
  return (*v)->as_bool();
}

Expected<std::vector<std::string>> GgufFile::get_string_array(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  if ((*v)->type() != GgufType::kArray || (*v)->elem_type() != GgufType::kString) {
    return key_error(key, "has type " + type_desc(**v) + ", expected array of string");
  }
  return (*v)->strings();
}

Expected<std::vector<int64_t>> GgufFile::get_int_array(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  const GgufValue& a = **v;
  if (a.type() != GgufType::kArray ||
      !(gguf_type_is_signed(a.elem_type()) || gguf_type_is_unsigned(a.elem_type()))) {
    return key_error(key, "has type " + type_desc(a) + ", expected an array of integers");
  }
  std::vector<int64_t> out(static_cast<size_t>(a.size()));
  for (uint64_t k = 0; k < a.size(); ++k) {
    if (gguf_type_is_signed(a.elem_type())) {
      out[k] = a.int_at(k);
    } else {
      const uint64_t u = a.uint_at(k);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return key_error(key, "element " + u64s(k) + " = " + u64s(u) + " does not fit in int64");
      }
      out[k] = static_cast<int64_t>(u);
    }
  }
  return out;
}

Expected<std::vector<double>> GgufFile::get_float_array(const std::string& key) const {
  Expected<const GgufValue*> v = require(key);
  if (!v.ok()) return v.status();
  const GgufValue& a = **v;
  if (a.type() != GgufType::kArray || !gguf_type_is_float(a.elem_type())) {
    return key_error(key, "has type " + type_desc(a) + ", expected an array of f32 or f64");
  }
  std::vector<double> out(static_cast<size_t>(a.size()));
  for (uint64_t k = 0; k < a.size(); ++k) out[k] = a.float_at(k);
  return out;
}

// ---- GgufWriter ----

namespace {

void put_u32(std::vector<uint8_t>& out, uint32_t v) { detail::append_le<uint32_t>(out, v); }
void put_u64(std::vector<uint8_t>& out, uint64_t v) { detail::append_le<uint64_t>(out, v); }
void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put_u64(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

void put_value(std::vector<uint8_t>& out, const GgufValue& v) {
  if (v.type() == GgufType::kString) {
    put_string(out, v.as_string());
  } else if (v.type() == GgufType::kArray) {
    put_u32(out, static_cast<uint32_t>(v.elem_type()));
    put_u64(out, v.size());
    if (v.elem_type() == GgufType::kString) {
      for (const std::string& s : v.strings()) put_string(out, s);
    } else {
      out.insert(out.end(), v.raw().begin(), v.raw().end());
    }
  } else {
    const uint64_t bits = bits_of_scalar(v);
    for (size_t k = 0; k < gguf_type_size(v.type()); ++k) {
      out.push_back(static_cast<uint8_t>(bits >> (8 * k)));
    }
  }
}

}  // namespace

void GgufWriter::set(const std::string& key, GgufValue value) {
  auto it = kv_index_.find(key);
  if (it != kv_index_.end()) {
    kv_[it->second].value = std::move(value);
    return;
  }
  kv_index_.emplace(key, kv_.size());
  kv_.push_back({key, std::move(value)});
}

Status GgufWriter::add_tensor(const std::string& name, std::vector<int64_t> dims, uint32_t type,
                              const void* data, size_t n_bytes) {
  const std::string where = "gguf: tensor " + quoted(name);
  if (name.empty()) return Status::Error("gguf: empty tensor name");
  if (name.size() > kMaxTensorNameWrite) {
    return Status::Error(where + ": name is " + std::to_string(name.size()) +
                         " bytes, ggml allows at most " + std::to_string(kMaxTensorNameWrite));
  }
  if (tensor_index_.count(name))
    return Status::Error("gguf: duplicate tensor name " + quoted(name));
  if (dims.empty() || dims.size() > static_cast<size_t>(kGgufMaxDims)) {
    return Status::Error(where + ": " + std::to_string(dims.size()) + " dims, expected 1.." +
                         std::to_string(kGgufMaxDims));
  }
  Expected<uint64_t> expected_bytes = ggml_tensor_bytes(type, dims);
  if (!expected_bytes.ok()) return expected_bytes.status().Wrap(where);
  if (*expected_bytes != n_bytes) {
    return Status::Error(where + ": " + std::to_string(n_bytes) + " bytes given, but " +
                         element_type_name(type) + " " + dims_string(dims) + " takes " +
                         u64s(*expected_bytes));
  }
  if (data == nullptr && n_bytes > 0) return Status::Error(where + ": null data");
  tensor_index_.emplace(name, tensors_.size());
  tensors_.push_back({name, std::move(dims), type, data, n_bytes});
  return Status::Ok();
}

Expected<uint64_t> GgufWriter::alignment() const {
  auto it = kv_index_.find("general.alignment");
  if (it == kv_index_.end()) return uint64_t{kGgufDefaultAlignment};
  const GgufValue& v = kv_[it->second].value;
  // The spec fixes the type to u32; llama.cpp rejects anything else.
  if (v.type() != GgufType::kU32 || !is_power_of_two(v.as_uint())) {
    return Status::Error("general.alignment must be a u32 power of two, got " + type_desc(v) + " " +
                         format_gguf_value(v));
  }
  return v.as_uint();
}

Expected<std::vector<uint8_t>> GgufWriter::build_head(uint64_t alignment) const {
  std::vector<uint8_t> out(kMagic, kMagic + 4);
  put_u32(out, kWriteVersion);
  put_u64(out, tensors_.size());
  put_u64(out, kv_.size());
  for (const GgufKv& kv : kv_) {
    put_string(out, kv.key);
    put_u32(out, static_cast<uint32_t>(kv.value.type()));
    put_value(out, kv.value);
  }
  uint64_t offset = 0;
  for (const PendingTensor& t : tensors_) {
    put_string(out, t.name);
    put_u32(out, static_cast<uint32_t>(t.dims.size()));
    for (int64_t d : t.dims) put_u64(out, static_cast<uint64_t>(d));
    put_u32(out, t.type);
    put_u64(out, offset);
    uint64_t padded;
    if (!checked_align_up(t.n_bytes, alignment, &padded) || !checked_add(offset, padded, &offset)) {
      return Status::Error("total tensor data size overflows");
    }
  }
  uint64_t head_size;
  if (!checked_align_up(out.size(), alignment, &head_size)) {
    return Status::Error("header size overflows");
  }
  out.resize(static_cast<size_t>(head_size), 0);
  return out;
}

namespace {
// Writes n bytes through `sink`, then zeros up to the next multiple of `alignment`.
template <typename Sink>
Status emit_padded(Sink& sink, const void* data, uint64_t n, uint64_t alignment) {
  static const uint8_t kZeros[256] = {};
  LONGCTX_RETURN_IF_ERROR(sink(data, n));
  uint64_t pad = (alignment - n % alignment) % alignment;
  while (pad > 0) {
    const uint64_t chunk = pad < sizeof(kZeros) ? pad : sizeof(kZeros);
    LONGCTX_RETURN_IF_ERROR(sink(kZeros, chunk));
    pad -= chunk;
  }
  return Status::Ok();
}
}  // namespace

Status GgufWriter::write_to(std::FILE* f) const {
  Expected<uint64_t> align = alignment();
  if (!align.ok()) return align.status();
  Expected<std::vector<uint8_t>> head = build_head(*align);
  if (!head.ok()) return head.status();
  auto sink = [f](const void* p, uint64_t n) -> Status {
    if (n > 0 && std::fwrite(p, 1, n, f) != n) {
      return Status::Error(std::string("write failed: ") + std::strerror(errno));
    }
    return Status::Ok();
  };
  LONGCTX_RETURN_IF_ERROR(sink(head->data(), head->size()));
  for (const PendingTensor& t : tensors_) {
    LONGCTX_RETURN_IF_ERROR(emit_padded(sink, t.data, t.n_bytes, *align));
  }
  return Status::Ok();
}

Status GgufWriter::write(const std::string& path) const {
  // Validate before touching the file system, so a bad writer never creates even a temp file.
  Expected<uint64_t> align = alignment();
  if (!align.ok()) return align.status().Wrap("gguf: " + path);
  // write_file_atomic prefixes the path to every error, the callback's included.
  return write_file_atomic(path, [this](std::FILE* f) { return write_to(f); }).Wrap("gguf");
}

Expected<std::vector<uint8_t>> GgufWriter::to_bytes() const {
  Expected<uint64_t> align = alignment();
  if (!align.ok()) return align.status().Wrap("gguf");
  Expected<std::vector<uint8_t>> head = build_head(*align);
  if (!head.ok()) return head.status().Wrap("gguf");
  std::vector<uint8_t> out = std::move(head).value();
  auto sink = [&out](const void* p, uint64_t n) -> Status {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
    return Status::Ok();
  };
  for (const PendingTensor& t : tensors_) {
    LONGCTX_RETURN_IF_ERROR(emit_padded(sink, t.data, t.n_bytes, *align));
  }
  return out;
}

}  // namespace longctx::io
