// safetensors reader (https://github.com/huggingface/safetensors), and Hugging Face sharded
// checkpoints built from it. A file is
//   u64 N       little-endian length of the header
//   header      N bytes of UTF-8 JSON, possibly padded with trailing spaces (writers pad to 8):
//                 {"__metadata__": {"key": "value", ...},            (optional, string -> string)
//                  "<tensor name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]},
//                  ...}
//   byte buffer everything after the header; [begin, end) of each tensor is relative to its start
// Tensor bytes are little-endian, row-major (C order), `shape` slowest dimension first (PyTorch
// order: the reverse of GGUF's dims). dtypes: F64 F32 F16 BF16 I64 I32 I16 I8 U64 U32 U16 U8
// BOOL F8_E4M3 F8_E5M2 (1, 2, 4 or 8 bytes per element). A tensor's data need not be aligned.
//
// The reader validates everything before handing anything out, as the reference (Rust crate)
// reader does, plus a few stricter checks. A SafetensorsFile that opened has:
//   - a header of 1 byte .. 100 MiB that is a JSON object (UTF-8, no NUL byte, nested at most 64
//     deep) without duplicate keys at any level;
//   - every entry an object with a known "dtype", a "shape" of integers 0 .. 2^62 whose product
//     (n_elements) is at most 2^62, and "data_offsets" [begin, end] with begin <= end, end inside
//     the byte buffer and end - begin == n_elements * dtype size; other keys are ignored;
//   - tensors that tile the byte buffer exactly: sorted by offset, each starts where the previous
//     ended, the first at 0, the last ends at the end of the file (no overlap, hole or trailing
//     bytes; zero-size tensors may sit anywhere on that chain);
//   - "__metadata__" (if present and not null) an object of string values.
// Anything else is one error line, for any input bytes: no crash, no exception, no UB.
//
// Differences from the reference reader: duplicate JSON keys are rejected (serde_json keeps the
// last one); nesting stops at 64 levels (serde_json: 128); every dimension and partial product
// of the shape must stay <= 2^62 (Rust: no usize overflow); the header limit is 100 MiB (Rust:
// 100,000,000 bytes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"
#include "io/atomic_file.h"

namespace longctx::io {

inline constexpr uint32_t kSafetensorsNoGgmlType = 0xffffffffu;
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = uint64_t{100} << 20;  // 100 MiB
inline constexpr uint64_t kSafetensorsMaxElements = uint64_t{1} << 62;        // per tensor

// Bytes per element of a safetensors dtype ("F32" -> 4); 0 for an unknown dtype.
uint64_t safetensors_dtype_size(const std::string& dtype);
// The ggml type id (kF32, kF16, kBF16 of core/element_type.h) of F32 / F16 / BF16;
// kSafetensorsNoGgmlType for every other dtype.
uint32_t safetensors_ggml_type(const std::string& dtype);

struct SafetensorsTensor {
  std::string name;
  std::string dtype;                       // as in the header: "F32", "BF16", ...
  uint32_t type = kSafetensorsNoGgmlType;  // ggml id for F32 / F16 / BF16, else kSafetensorsNoGgmlType
  std::vector<int64_t> shape;              // as in the header: PyTorch order, slowest dimension first
  uint64_t n_elements = 0;                 // product of shape (1 for a 0-d scalar)
  uint64_t n_bytes = 0;                    // n_elements * dtype size
  uint64_t offset = 0;                     // data_offsets[0]: from the start of the byte buffer
  const uint8_t* data = nullptr;           // inside the file's bytes; valid while the owner lives
};

// A parsed safetensors file. Move-only; it owns the bytes (an mmap or a vector) that tensor data
// points into, and moving it keeps those pointers (and pointers to its tensors) valid.
class SafetensorsFile {
 public:
  // Maps `path` read-only (zero copy). Errors read "safetensors: <path>: <problem>".
  static Expected<SafetensorsFile> open(const std::string& path);
  // Parses bytes held in memory (tests, fuzzing). Errors read "safetensors: <problem>".
  static Expected<SafetensorsFile> from_bytes(std::vector<uint8_t> bytes);

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  // Sorted by data offset (file order): by (begin, end), then name (for zero-size tensors).
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(const std::string& name) const;
  // "__metadata__"; empty when the header has none.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }  // empty for from_bytes
  uint64_t header_bytes() const { return header_bytes_; }  // N
  uint64_t data_offset() const { return 8 + header_bytes_; }  // file offset of the byte buffer
  uint64_t file_size() const { return size_; }

 private:
  SafetensorsFile() = default;
  Status parse();  // fills everything from bytes_/size_

  std::string path_;
  std::vector<uint8_t> owned_;  // from_bytes
  MappedFile mapped_;           // open
  const uint8_t* bytes_ = nullptr;
  uint64_t size_ = 0;
  uint64_t header_bytes_ = 0;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// A model's weights: one .safetensors file, or the shards listed by a Hugging Face
// `model.safetensors.index.json` ({"metadata": {...}, "weight_map": {tensor name: shard file}};
// "metadata" is not read). open(path) takes
//   - a directory holding model.safetensors (preferred, as transformers does) or
//     model.safetensors.index.json;
//   - a file whose name ends in ".json": an index; shards are resolved next to it;
//   - any other file: a single .safetensors file.
// Checks: the weight_map is a non-empty object of strings; each shard name is a plain file name
// (not empty, ".", "..", and without '/', '\\' or NUL); every shard opens (SafetensorsFile::open);
// every tensor the index names is in the shard it names; no tensor name is in two shards. Tensors
// a shard holds beyond those the index lists are kept (and found). Errors read
// "safetensors: <file>: <problem>", naming the index or the shard at fault.
class SafetensorsModel {
 public:
  static Expected<SafetensorsModel> open(const std::string& path);

  SafetensorsModel(SafetensorsModel&&) noexcept = default;
  SafetensorsModel& operator=(SafetensorsModel&&) noexcept = default;
  SafetensorsModel(const SafetensorsModel&) = delete;
  SafetensorsModel& operator=(const SafetensorsModel&) = delete;

  const SafetensorsTensor* find(const std::string& name) const;
  // All tensors of all shards: shards in files() order, each in file order.
  std::vector<const SafetensorsTensor*> tensors() const;
  // One file, or the shards sorted by file name.
  const std::vector<SafetensorsFile>& files() const { return files_; }
  const std::string& path() const { return path_; }  // the argument to open()

 private:
  SafetensorsModel() = default;
  Status index_tensors();  // fills index_ from files_; errors on a name in two files

  std::string path_;
  std::vector<SafetensorsFile> files_;
  // name -> (file, tensor) indices: stays valid when the model (and files_) moves.
  std::unordered_map<std::string, std::pair<size_t, size_t>> index_;
};

}  // namespace longctx::io
