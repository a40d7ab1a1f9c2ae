// GGUF reader (gguf.h): GgufFile parses and validates the whole file before handing anything
// out.
#include <bit>
#include <cstring>
#include <limits>

#include "core/element_type.h"
#include "io/gguf.h"
#include "io/gguf_internal.h"

namespace longctx::io {

using gguf_internal::checked_add;
using gguf_internal::checked_align_up;
using gguf_internal::is_power_of_two;
using gguf_internal::kMagic;
using gguf_internal::load_le;
using gguf_internal::quoted;
using gguf_internal::sign_extend;
using gguf_internal::type_desc;
using gguf_internal::u64s;
using gguf_internal::valid_value_type;

namespace {

constexpr uint32_t kMinVersion = 2;
constexpr uint32_t kMaxVersion = 3;
// The smallest possible metadata entry (empty key: 8, type: 4, a one-byte value: 1) and tensor
// info (empty name: 8, n_dims: 4, one dim: 8, type: 4, offset: 8). Counts are checked against
// these before anything is reserved, so a forged count cannot make us allocate.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

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

// A fixed-size scalar from its little-endian bits.
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

// The header: magic, version, and tensor and metadata counts that can fit in the rest of the
// file (`size` bytes in all).
Status read_header(Cursor& c, uint64_t size, uint32_t* version, uint64_t* n_tensors,
                   uint64_t* n_kv) {
  const uint8_t* magic = nullptr;
  if (!c.bytes(4, &magic)) {
    return Status::Error("file is " + u64s(size) + " bytes, too short for a GGUF header");
  }
  if (std::memcmp(magic, kMagic, 4) != 0) {
    return Status::Error("bad magic " +
                         quoted(std::string(reinterpret_cast<const char*>(magic), 4)) +
                         " (expected 'GGUF'): not a GGUF file");
  }
  if (!c.u32(version)) return truncated(c, "the version");
  if (*version < kMinVersion || *version > kMaxVersion) {
    // A big-endian v3 file reads as 0x03000000 here; say so instead of "version 50331648".
    const uint32_t swapped = __builtin_bswap32(*version);
    if (swapped >= kMinVersion && swapped <= kMaxVersion) {
      return Status::Error("big-endian GGUF files are not supported");
    }
    return Status::Error("unsupported GGUF version " + u64s(*version) + " (only versions " +
                         u64s(kMinVersion) + " and " + u64s(kMaxVersion) + " are supported)");
  }
  if (!c.u64(n_tensors)) return truncated(c, "the tensor count");
  if (!c.u64(n_kv)) return truncated(c, "the metadata count");
  if (*n_kv > c.left() / kMinKvBytes) {
    return Status::Error("metadata count " + u64s(*n_kv) + " cannot fit in a file of " +
                         u64s(size) + " bytes");
  }
  if (*n_tensors > (c.left() - *n_kv * kMinKvBytes) / kMinTensorInfoBytes) {
    return Status::Error("tensor count " + u64s(*n_tensors) + " cannot fit in a file of " +
                         u64s(size) + " bytes");
  }
  return Status::Ok();
}

// The value of general.alignment: any integer type holding a power of two.
Expected<uint64_t> alignment_of(const GgufValue& a) {
  uint64_t align = 0;
  if (gguf_type_is_unsigned(a.type())) {
    align = a.as_uint();
  } else if (gguf_type_is_signed(a.type())) {
    if (a.as_int() <= 0) {
      return Status::Error("general.alignment must be a power of two, got " +
                           std::to_string(a.as_int()));
    }
    align = static_cast<uint64_t>(a.as_int());
  } else {
    return Status::Error("key 'general.alignment' has type " + gguf_type_name(a.type()) +
                         ", expected an integer");
  }
  if (!is_power_of_two(align)) {
    return Status::Error("general.alignment must be a power of two, got " + u64s(align));
  }
  return align;
}

// Tensor info k: name, dims, ggml type, offset; n_bytes and n_elements from the dims. The offset
// is checked against the data section later.
Status read_tensor_info(Cursor& c, uint64_t k, GgufTensorInfo* t) {
  LONGCTX_RETURN_IF_ERROR(read_string(c, "the name of tensor " + u64s(k), &t->name));
  const std::string where = "tensor " + quoted(t->name);
  uint32_t n_dims;
  if (!c.u32(&n_dims)) return truncated(c, "n_dims of " + where);
  if (n_dims < 1 || n_dims > static_cast<uint32_t>(kGgufMaxDims)) {
    return Status::Error(where + ": n_dims " + u64s(n_dims) + " is out of range (1.." +
                         std::to_string(kGgufMaxDims) + ")");
  }
  t->dims.resize(n_dims);
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t ne;
    if (!c.u64(&ne)) return truncated(c, "dimension " + u64s(d) + " of " + where);
    if (ne > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return Status::Error(where + ": dimension " + u64s(d) + " = " + u64s(ne) +
                           " does not fit in int64");
    }
    t->dims[d] = static_cast<int64_t>(ne);
  }
  if (!c.u32(&t->type)) return truncated(c, "the type of " + where);
  if (!c.u64(&t->offset)) return truncated(c, "the data offset of " + where);
  if (element_type_info(t->type) == nullptr) {
    return Status::Error(where + " has unknown ggml type " + u64s(t->type));
  }
  Expected<uint64_t> n_bytes = ggml_tensor_bytes(t->type, t->dims);
  if (!n_bytes.ok()) return n_bytes.status().Wrap(where);
  t->n_bytes = *n_bytes;
  t->n_elements = 1;
  for (int64_t d : t->dims) t->n_elements *= static_cast<uint64_t>(d);  // checked above
  return Status::Ok();
}

}  // namespace

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
  uint64_t n_tensors, n_kv;
  LONGCTX_RETURN_IF_ERROR(read_header(c, size_, &version_, &n_tensors, &n_kv));

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
    Expected<uint64_t> align = alignment_of(*a);
    if (!align.ok()) return align.status();
    alignment_ = *align;
  }

  // Tensor infos.
  tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    LONGCTX_RETURN_IF_ERROR(read_tensor_info(c, k, &t));
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

}  // namespace longctx::io
