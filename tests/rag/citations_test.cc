// rag::read_citations: which passages an answer cites, and which bracketed numbers name none.
#include <gtest/gtest.h>

#include "rag/ask.h"

namespace longctx::rag {
namespace {

TEST(Citations, ReadsSingleListsRangesAndRuns) {
  const Citations c = read_citations("Tuxford is the capital [2]. It lies on the Glub [1, 3][3] and [4-5].", 5);
  EXPECT_EQ(c.cited, (std::vector<int>{2, 1, 3, 4, 5}));
  EXPECT_TRUE(c.unknown.empty());
}

TEST(Citations, NumbersNamingNoPassageAreKeptApart) {
  const Citations c = read_citations("See [7] and [0], also [2] and [7] again, and [12-13].", 3);
  EXPECT_EQ(c.cited, (std::vector<int>{2}));
  EXPECT_EQ(c.unknown, (std::vector<int>{7, 0, 12, 13}));
}

TEST(Citations, IgnoresBracketsThatAreNotCitations) {
  const Citations c = read_citations("a[i] = x[1.5] + [see below] + [] + [,] + [1-100] + [99999999999999999999] [", 5);
  EXPECT_TRUE(c.cited.empty());
  // [1-100] is no citation (a range of 100); the huge number (read as its first 9 digits) names
  // no passage.
  EXPECT_EQ(c.unknown, (std::vector<int>{999999999}));
}

TEST(Citations, PromptNumbersPassagesWithTheirSources) {
  const auto m = ask_messages("Why?", {{"a.md:1-2", "First."}, {"b.txt:5-9", "Second."}});
  ASSERT_EQ(m.size(), 2u);
  EXPECT_EQ(m[0].role, "system");
  EXPECT_NE(m[1].content.find("[1] (a.md:1-2)\nFirst."), std::string::npos);
  EXPECT_NE(m[1].content.find("[2] (b.txt:5-9)\nSecond."), std::string::npos);
  EXPECT_NE(m[1].content.find("Question: Why?"), std::string::npos);
}

}  // namespace
}  // namespace longctx::rag
