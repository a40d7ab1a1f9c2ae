// GGUF writer (gguf.h): GgufWriter builds the head in memory and streams the tensors after it.
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/element_type.h"
#include "io/gguf.h"
#include "io/gguf_internal.h"

namespace longctx::io {

using gguf_internal::checked_add;
using gguf_internal::checked_align_up;
using gguf_internal::dims_string;
using gguf_internal::is_power_of_two;
using gguf_internal::kMagic;
using gguf_internal::quoted;
using gguf_internal::type_desc;
using gguf_internal::u64s;

namespace {

constexpr uint32_t kWriteVersion = 3;
// ggml stores tensor names in char[GGML_MAX_NAME = 64] with a terminating NUL.
constexpr size_t kMaxTensorNameWrite = 63;

// A fixed-size scalar's little-endian bits.
uint64_t bits_of_scalar(const GgufValue& v) {
  const GgufType t = v.type();
  if (gguf_type_is_unsigned(t)) return v.as_uint();
  if (gguf_type_is_signed(t)) return static_cast<uint64_t>(v.as_int());  // low bytes are written
  if (t == GgufType::kF32) return std::bit_cast<uint32_t>(static_cast<float>(v.as_float()));
  if (t == GgufType::kF64) return std::bit_cast<uint64_t>(v.as_float());
  return v.as_bool() ? 1 : 0;
}

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
