#include "core/element_type.h"

#include <cctype>

namespace longctx {
namespace {

// Block sizes and bytes per block, from ggml-common.h (block_* structs) and ggml.c type traits.
// Ids 4, 5 (Q4_2, Q4_3), 31..33 and 36..38 (repacked layouts) are gone from files.
constexpr ElementTypeInfo kElementTypes[] = {
    {0, "F32", 1, 4},         {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},
    {3, "Q4_1", 32, 20},      {6, "Q5_0", 32, 22},      {7, "Q5_1", 32, 24},
    {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},      {10, "Q2_K", 256, 84},
    {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},   {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66},
    {17, "IQ2_XS", 256, 74},  {18, "IQ3_XXS", 256, 98}, {19, "IQ1_S", 256, 50},
    {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},  {22, "IQ2_S", 256, 82},
    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},        {27, "I64", 1, 8},        {28, "F64", 1, 8},
    {29, "IQ1_M", 256, 56},   {30, "BF16", 1, 2},       {34, "TQ1_0", 256, 54},
    {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

bool equal_any_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t k = 0; k < a.size(); ++k) {
    if (std::toupper(static_cast<unsigned char>(a[k])) != std::toupper(static_cast<unsigned char>(b[k]))) {
      return false;
    }
  }
  return true;
}

}  // namespace

const ElementTypeInfo* element_type_info(uint32_t id) {
  for (const ElementTypeInfo& t : kElementTypes) {
    if (t.id == id) return &t;
  }
  return nullptr;
}

const ElementTypeInfo* element_type_by_name(std::string_view name) {
  for (const ElementTypeInfo& t : kElementTypes) {
    if (equal_any_case(t.name, name)) return &t;
  }
  return nullptr;
}

std::string element_type_name(uint32_t id) {
  const ElementTypeInfo* t = element_type_info(id);
  return t ? std::string(t->name) : "type " + std::to_string(id);
}

int64_t element_row_bytes(uint32_t id, int64_t n) {
  const ElementTypeInfo* t = element_type_info(id);
  if (t == nullptr || n < 0 || n % t->block_size != 0) return -1;
  return n / t->block_size * t->block_bytes;
}

}  // namespace longctx
