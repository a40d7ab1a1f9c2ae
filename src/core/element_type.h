// Tensor element types: ggml's type ids (ggml.h enum ggml_type) and the one table of their names
// and block layouts. The file formats (io/: the `type` of a GGUF tensor, the dtype of a
// safetensors one) and the block codecs (quant/) both speak these ids; neither owns them.
//
// A block is `block_size` consecutive elements of a row stored in `block_bytes` bytes (1 element
// in sizeof(T) bytes for plain types, 32 or 256 for the quantized ones); a row of a block type is
// a whole number of blocks. The layouts behind the sizes are quant/formats.h's.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace longctx {

// ggml type ids of the types the engine reads or writes.
inline constexpr uint32_t kF32 = 0;
inline constexpr uint32_t kF16 = 1;
inline constexpr uint32_t kQ4_0 = 2;
inline constexpr uint32_t kQ4_1 = 3;
inline constexpr uint32_t kQ8_0 = 8;
inline constexpr uint32_t kQ4_K = 12;
inline constexpr uint32_t kQ5_K = 13;
inline constexpr uint32_t kQ6_K = 14;
inline constexpr uint32_t kBF16 = 30;

struct ElementTypeInfo {
  uint32_t id;
  const char* name;      // ggml's spelling: "Q8_0"
  uint32_t block_size;   // elements per block
  uint32_t block_bytes;  // bytes per block
};

// Any type ggml defines (not only the ones above: a file may hold the others and must still be
// sized and named). Null for ids that ggml never defined or removed (4, 5, 31..33, 36..38) and
// ids past the table.
const ElementTypeInfo* element_type_info(uint32_t id);
// By ggml's name in any case ("q8_0", "Q8_0"); null for an unknown name.
const ElementTypeInfo* element_type_by_name(std::string_view name);
// "Q8_0", or "type 99" for an unknown id.
std::string element_type_name(uint32_t id);
// Bytes of a row of n elements; -1 for an unknown id, n < 0 or n not a whole number of blocks.
int64_t element_row_bytes(uint32_t id, int64_t n);

}  // namespace longctx
