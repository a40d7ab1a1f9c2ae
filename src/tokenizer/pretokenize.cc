#include "tokenizer/pretokenize.h"

#include <array>
#include <cstdint>

#include "core/check.h"

namespace longctx::tokenizer {
namespace {

enum class ByteClass : uint8_t { kLetter, kDigit, kSpace, kOther };

constexpr std::array<ByteClass, 256> make_class_table() {
  std::array<ByteClass, 256> t{};
  for (int b = 0; b < 256; ++b) {
    ByteClass c = ByteClass::kOther;
    if ((b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || b >= 0x80) {
      c = ByteClass::kLetter;
    } else if (b >= '0' && b <= '9') {
      c = ByteClass::kDigit;
    } else if (b == ' ' || b == '\t' || b == '\n' || b == '\v' || b == '\f' || b == '\r') {
      c = ByteClass::kSpace;
    }
    t[b] = c;
  }
  return t;
}

constexpr std::array<ByteClass, 256> kClass = make_class_table();

inline ByteClass class_at(std::string_view text, size_t i) {
  return kClass[static_cast<unsigned char>(text[i])];
}

}  // namespace

size_t piece_end(std::string_view text, size_t begin) {
  const size_t n = text.size();
  CHECK(begin < n);
  const char c = text[begin];

  // 1. Contractions come first in GPT-2's alternation, so "'s" wins over the "other" run.
  if (c == '\'' && begin + 1 < n) {
    const char c1 = text[begin + 1];
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return begin + 2;
    if (begin + 2 < n) {
      const char c2 = text[begin + 2];
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        return begin + 3;
      }
    }
  }

  // 2-4. An optional single space glued to the run of letters / digits / other bytes after it.
  size_t run_begin = begin;
  if (c == ' ' && begin + 1 < n && class_at(text, begin + 1) != ByteClass::kSpace) {
    run_begin = begin + 1;
  }
  const ByteClass run_class = class_at(text, run_begin);
  if (run_class != ByteClass::kSpace) {
    size_t end = run_begin + 1;
    while (end < n && class_at(text, end) == run_class) ++end;
    return end;
  }

  // 5. Whitespace run. \s+(?!\S) backtracks one byte when a non-space follows, leaving that byte
  // to start the next piece; a run of one byte cannot give one up, so \s+ takes it whole.
  size_t end = begin + 1;
  while (end < n && class_at(text, end) == ByteClass::kSpace) ++end;
  if (end < n && end - begin >= 2) return end - 1;
  return end;
}

std::vector<std::string_view> pretokenize(std::string_view text) {
  std::vector<std::string_view> pieces;
  for_each_piece(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace longctx::tokenizer
