// GGUF v2/v3 reader and writer, little-endian only.
// Format: ggml docs/gguf.md. A file is
//   header      "GGUF", u32 version, u64 n_tensors, u64 n_kv
//   metadata    n_kv x (string key, u32 value type, value)
//   tensor info n_tensors x (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset)
//   padding     to `general.alignment` (default 32)
//   data        tensor bytes; each offset is relative to the data section and aligned
// with strings stored as u64 length + bytes (no NUL). v1 used u32 counts and lengths and is
// rejected; v2 and v3 have the same layout (v3 only allowed big-endian files, which we reject).
//
// The reader validates everything before handing anything out: a GgufFile that opened has every
// tensor inside the file, every offset aligned, no duplicate names or keys, and known sizes.
//
// Code: gguf_reader.cc (GgufFile), gguf_writer.cc (GgufWriter), gguf_value.cc (what both share:
// value types, tensor sizes, GgufValue).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/check.h"
#include "core/status.h"
#include "io/atomic_file.h"

namespace longctx::io {

// Metadata value types, numbered as in the spec (gguf_metadata_value_type).
enum class GgufType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u8", "i32", "f32", "bool", "string", "array", ... ; "type <n>" for an invalid value.
std::string gguf_type_name(GgufType type);
// Bytes of one value of a fixed-size type; 0 for string and array.
size_t gguf_type_size(GgufType type);
bool gguf_type_is_unsigned(GgufType type);  // u8, u16, u32, u64
bool gguf_type_is_signed(GgufType type);    // i8, i16, i32, i64
bool gguf_type_is_float(GgufType type);     // f32, f64

inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr int kGgufMaxDims = 4;  // GGML_MAX_DIMS

// Bytes of a tensor with `dims` (GGUF order) of ggml type `type`. Errors (no name attached, the
// caller adds it): unknown type, a negative dim, dims[0] not a multiple of the block size (ggml
// rows are whole blocks), or an element/byte count that overflows int64.
Expected<uint64_t> ggml_tensor_bytes(uint32_t type, const std::vector<int64_t>& dims);

// One metadata value. Scalars are kept widened (integers to 64 bits, f32 to an exact double);
// arrays keep their element type, and store numeric and bool elements as the file's
// little-endian bytes (so a large array costs what it costs on disk) and strings decoded.
// Accessors CHECK that the type matches: asking a string for an integer is a bug in the caller;
// GgufFile::get_* are the checked, Status-returning way to read untrusted files.
class GgufValue {
 public:
  GgufValue() = default;  // u8 0

  // T: uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, uint64_t, int64_t, float, double,
  // bool. The GGUF type follows from T.
  template <typename T>
  static GgufValue scalar(T v);
  static GgufValue string(std::string v);
  // T: any of the scalar types above (std::vector<bool> too), or std::string.
  template <typename T>
  static GgufValue array(const std::vector<T>& v);
  static GgufValue array(std::vector<std::string>&& v);  // moves the strings
  // `count` elements of the fixed-size `elem_type`, as little-endian bytes (what the reader
  // builds).
  static GgufValue raw_array(GgufType elem_type, uint64_t count, std::vector<uint8_t> bytes);

  GgufType type() const { return type_; }

  // Scalars.
  uint64_t as_uint() const;  // u8/u16/u32/u64
  int64_t as_int() const;    // i8/i16/i32/i64
  double as_float() const;   // f32/f64
  bool as_bool() const;
  const std::string& as_string() const;

  // Arrays.
  GgufType elem_type() const;
  uint64_t size() const;                            // number of elements
  const std::vector<std::string>& strings() const;  // elem_type() == kString
  const std::vector<uint8_t>& raw() const;          // numeric/bool elements, little-endian
  uint64_t uint_at(uint64_t i) const;               // unsigned elements
  int64_t int_at(uint64_t i) const;                 // signed elements
  double float_at(uint64_t i) const;                // f32/f64 elements
  bool bool_at(uint64_t i) const;

  friend bool operator==(const GgufValue& a, const GgufValue& b);

 private:
  GgufType type_ = GgufType::kU8;
  uint64_t u_ = 0;  // unsigned scalars and bool
  int64_t i_ = 0;   // signed scalars
  double f_ = 0;    // f32/f64 scalars
  std::string s_;
  GgufType elem_type_ = GgufType::kU8;
  uint64_t count_ = 0;
  std::vector<std::string> strings_;
  std::vector<uint8_t> raw_;
};

// One line for `info`: 42, 1.5, true, "text" (escaped), [1, 2, 3, ... (n total)].
std::string format_gguf_value(const GgufValue& value, size_t max_elems = 8);

struct GgufKv {
  std::string key;
  GgufValue value;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // GGUF order: dims[0] varies fastest (ggml ne[0])
  uint32_t type = 0;          // ggml type id (core/element_type.h)
  uint64_t offset = 0;        // from the start of the data section; a multiple of the alignment
  uint64_t n_elements = 0;
  uint64_t n_bytes = 0;
  const uint8_t* data = nullptr;  // inside the GgufFile's bytes; valid while it lives
};

// A parsed GGUF file. Move-only; it owns the bytes (an mmap or a vector) that tensor data points
// into, and moving it keeps those pointers valid.
class GgufFile {
 public:
  // Maps `path` read-only (zero copy). Errors read "gguf: <path>: <problem>".
  static Expected<GgufFile> open(const std::string& path);
  // Parses bytes held in memory (tests, fuzzing). Errors read "gguf: <problem>".
  static Expected<GgufFile> from_bytes(std::vector<uint8_t> bytes);

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // file offset of the data section
  uint64_t file_size() const { return size_; }
  const std::string& path() const { return path_; }  // empty for from_bytes

  // Metadata in file order.
  const std::vector<GgufKv>& metadata() const { return kv_; }
  const GgufValue* find(const std::string& key) const;

  // Typed reads. Errors name the key: missing, or of another type.
  Expected<std::string> get_string(const std::string& key) const;
  // Any unsigned type, or a signed type holding a value >= 0.
  Expected<uint64_t> get_uint(const std::string& key) const;
  // Any signed type, or an unsigned type holding a value <= INT64_MAX.
  Expected<int64_t> get_int(const std::string& key) const;
  Expected<double> get_float(const std::string& key) const;  // f32 or f64
  Expected<bool> get_bool(const std::string& key) const;
  Expected<std::vector<std::string>> get_string_array(const std::string& key) const;
  // An array of any integer type whose elements all fit in int64.
  Expected<std::vector<int64_t>> get_int_array(const std::string& key) const;
  Expected<std::vector<double>> get_float_array(const std::string& key) const;  // f32 or f64

  // Tensors in file order.
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;

 private:
  GgufFile() = default;
  Status parse();  // fills everything from bytes_/size_
  Status key_error(const std::string& key, const std::string& problem) const;
  Expected<const GgufValue*> require(const std::string& key) const;

  std::string path_;
  std::vector<uint8_t> owned_;  // from_bytes
  MappedFile mapped_;           // open
  const uint8_t* bytes_ = nullptr;
  uint64_t size_ = 0;

  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufKv> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Builds a GGUF v3 file in memory (metadata, tensor descriptions) and writes it atomically.
// Tensor data is NOT copied: add_tensor keeps the pointer, and the buffer must stay alive and
// unchanged until write() returns (a checkpoint can then be saved without a second copy of the
// weights).
class GgufWriter {
 public:
  // Setting an existing key replaces its value and keeps its original position; keys are
  // written in first-insertion order.
  void set_u8(const std::string& key, uint8_t v) { set(key, GgufValue::scalar(v)); }
  void set_i8(const std::string& key, int8_t v) { set(key, GgufValue::scalar(v)); }
  void set_u16(const std::string& key, uint16_t v) { set(key, GgufValue::scalar(v)); }
  void set_i16(const std::string& key, int16_t v) { set(key, GgufValue::scalar(v)); }
  void set_u32(const std::string& key, uint32_t v) { set(key, GgufValue::scalar(v)); }
  void set_i32(const std::string& key, int32_t v) { set(key, GgufValue::scalar(v)); }
  void set_u64(const std::string& key, uint64_t v) { set(key, GgufValue::scalar(v)); }
  void set_i64(const std::string& key, int64_t v) { set(key, GgufValue::scalar(v)); }
  void set_f32(const std::string& key, float v) { set(key, GgufValue::scalar(v)); }
  void set_f64(const std::string& key, double v) { set(key, GgufValue::scalar(v)); }
  void set_bool(const std::string& key, bool v) { set(key, GgufValue::scalar(v)); }
  void set_string(const std::string& key, std::string v) {
    set(key, GgufValue::string(std::move(v)));
  }
  void set_string_array(const std::string& key, const std::vector<std::string>& v) {
    set(key, GgufValue::array(v));
  }
  void set_i32_array(const std::string& key, const std::vector<int32_t>& v) {
    set(key, GgufValue::array(v));
  }
  void set_f32_array(const std::string& key, const std::vector<float>& v) {
    set(key, GgufValue::array(v));
  }
  // Any value, including arrays of any element type (GgufValue::array).
  void set(const std::string& key, GgufValue value);

  // Describes a tensor; `dims` in GGUF order (dims[0] fastest). `data` (n_bytes bytes, which
  // must equal the size the type and dims imply) is referenced, not copied: see the class
  // comment. Errors: empty, too long (ggml keeps 63 bytes) or duplicate name, 0 or more than 4
  // dims, unknown type, dims[0] not a whole number of blocks, a size mismatch.
  Status add_tensor(const std::string& name, std::vector<int64_t> dims, uint32_t type,
                    const void* data, size_t n_bytes);

  // Writes GGUF v3 atomically (write_file_atomic). The alignment is 32, or the value of
  // `general.alignment` if it was set (it must be a u32 power of two).
  Status write(const std::string& path) const;
  // The same bytes, in memory (tests, fuzz seeds).
  Expected<std::vector<uint8_t>> to_bytes() const;

  size_t n_kv() const { return kv_.size(); }
  size_t n_tensors() const { return tensors_.size(); }

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> dims;
    uint32_t type;
    const void* data;
    uint64_t n_bytes;
  };
  Expected<uint64_t> alignment() const;
  // Header, metadata, tensor infos, padding: everything before the data section.
  Expected<std::vector<uint8_t>> build_head(uint64_t alignment) const;
  Status write_to(std::FILE* f) const;

  std::vector<GgufKv> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<PendingTensor> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// ---- template definitions ----

namespace detail {
template <typename T>
constexpr GgufType gguf_type_of() {
  using U = std::remove_cv_t<T>;
  if constexpr (std::is_same_v<U, bool>)
    return GgufType::kBool;
  else if constexpr (std::is_same_v<U, uint8_t>)
    return GgufType::kU8;
  else if constexpr (std::is_same_v<U, int8_t>)
    return GgufType::kI8;
  else if constexpr (std::is_same_v<U, uint16_t>)
    return GgufType::kU16;
  else if constexpr (std::is_same_v<U, int16_t>)
    return GgufType::kI16;
  else if constexpr (std::is_same_v<U, uint32_t>)
    return GgufType::kU32;
  else if constexpr (std::is_same_v<U, int32_t>)
    return GgufType::kI32;
  else if constexpr (std::is_same_v<U, uint64_t>)
    return GgufType::kU64;
  else if constexpr (std::is_same_v<U, int64_t>)
    return GgufType::kI64;
  else if constexpr (std::is_same_v<U, float>)
    return GgufType::kF32;
  else if constexpr (std::is_same_v<U, double>)
    return GgufType::kF64;
  else if constexpr (std::is_same_v<U, std::string>)
    return GgufType::kString;
  else
    static_assert(sizeof(T) == 0, "not a GGUF value type");
}
// Appends the little-endian bytes of a fixed-size value.
template <typename T>
void append_le(std::vector<uint8_t>& out, T v) {
  uint64_t bits = 0;
  if constexpr (std::is_same_v<T, float>) {
    uint32_t b;
    static_assert(sizeof(b) == sizeof(v));
    __builtin_memcpy(&b, &v, sizeof(b));
    bits = b;
  } else if constexpr (std::is_same_v<T, double>) {
    __builtin_memcpy(&bits, &v, sizeof(bits));
  } else {
    bits = static_cast<uint64_t>(v);
  }
  for (size_t k = 0; k < sizeof(T); ++k) out.push_back(static_cast<uint8_t>(bits >> (8 * k)));
}
}  // namespace detail

template <typename T>
GgufValue GgufValue::scalar(T v) {
  constexpr GgufType t = detail::gguf_type_of<T>();
  static_assert(t != GgufType::kString, "use GgufValue::string");
  GgufValue out;
  out.type_ = t;
  if constexpr (t == GgufType::kBool) {
    out.u_ = v ? 1 : 0;
  } else if constexpr (std::is_floating_point_v<T>) {
    out.f_ = static_cast<double>(v);
  } else if constexpr (std::is_signed_v<T>) {
    out.i_ = static_cast<int64_t>(v);
  } else {
    out.u_ = static_cast<uint64_t>(v);
  }
  return out;
}

template <typename T>
GgufValue GgufValue::array(const std::vector<T>& v) {
  constexpr GgufType t = detail::gguf_type_of<T>();
  GgufValue out;
  out.type_ = GgufType::kArray;
  out.elem_type_ = t;
  out.count_ = v.size();
  if constexpr (t == GgufType::kString) {
    out.strings_ = v;
  } else {
    out.raw_.reserve(v.size() * sizeof(T));
    for (const T& x : v) detail::append_le<T>(out.raw_, x);
  }
  return out;
}

}  // namespace longctx::io
