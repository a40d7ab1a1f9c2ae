// The element-type table against ggml: ids from ggml.h (enum ggml_type), block sizes and bytes
// per block from ggml-common.h's block_* structs, written out here rather than taken from the
// code under test.
#include "core/element_type.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace longctx {
namespace {

TEST(ElementType, IdsAreGgmls) {
  EXPECT_EQ(kF32, 0u);
  EXPECT_EQ(kF16, 1u);
  EXPECT_EQ(kQ4_0, 2u);
  EXPECT_EQ(kQ4_1, 3u);
  EXPECT_EQ(kQ8_0, 8u);
  EXPECT_EQ(kQ4_K, 12u);
  EXPECT_EQ(kQ5_K, 13u);
  EXPECT_EQ(kQ6_K, 14u);
  EXPECT_EQ(kBF16, 30u);
}

TEST(ElementType, BlockSizesMatchGgml) {
  // {id, block size, bytes per block}
  struct Row {
    uint32_t id;
    uint32_t block;
    uint32_t bytes;
    const char* name;
  };
  const Row rows[] = {
      {0, 1, 4, "F32"},       {1, 1, 2, "F16"},       {30, 1, 2, "BF16"},
      {2, 32, 18, "Q4_0"},    {3, 32, 20, "Q4_1"},    {6, 32, 22, "Q5_0"},
      {7, 32, 24, "Q5_1"},    {8, 32, 34, "Q8_0"},    {9, 32, 36, "Q8_1"},
      {10, 256, 84, "Q2_K"},  {11, 256, 110, "Q3_K"}, {12, 256, 144, "Q4_K"},
      {13, 256, 176, "Q5_K"}, {14, 256, 210, "Q6_K"}, {15, 256, 292, "Q8_K"},
  };
  for (const Row& r : rows) {
    const ElementTypeInfo* t = element_type_info(r.id);
    ASSERT_NE(t, nullptr) << r.name;
    EXPECT_EQ(t->id, r.id) << r.name;
    EXPECT_EQ(t->block_size, r.block) << r.name;
    EXPECT_EQ(t->block_bytes, r.bytes) << r.name;
    EXPECT_STREQ(t->name, r.name);
    EXPECT_EQ(element_type_name(r.id), r.name);
  }
  for (uint32_t removed : {4u, 5u, 31u, 32u, 33u, 36u, 37u, 38u, 1000u}) {
    EXPECT_EQ(element_type_info(removed), nullptr) << removed;
  }
  EXPECT_EQ(element_type_name(99), "type 99");
}

TEST(ElementType, ByName) {
  for (const char* name : {"Q8_0", "q8_0"}) {
    const ElementTypeInfo* t = element_type_by_name(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->id, kQ8_0);
  }
  ASSERT_NE(element_type_by_name("bf16"), nullptr);
  EXPECT_EQ(element_type_by_name("bf16")->id, kBF16);
  EXPECT_EQ(element_type_by_name("Q8"), nullptr);
  EXPECT_EQ(element_type_by_name("Q8_0 "), nullptr);
  EXPECT_EQ(element_type_by_name(""), nullptr);
}

TEST(ElementType, RowBytes) {
  EXPECT_EQ(element_row_bytes(kF32, 3), 12);
  EXPECT_EQ(element_row_bytes(kBF16, 5), 10);
  EXPECT_EQ(element_row_bytes(kQ8_0, 64), 2 * 34);
  EXPECT_EQ(element_row_bytes(kQ6_K, 512), 2 * 210);
  EXPECT_EQ(element_row_bytes(kQ4_0, 0), 0);
  EXPECT_EQ(element_row_bytes(kQ8_0, 33), -1);   // not whole blocks
  EXPECT_EQ(element_row_bytes(kQ8_0, -32), -1);  // negative
  EXPECT_EQ(element_row_bytes(4, 32), -1);       // removed id
}

}  // namespace
}  // namespace longctx
