// SpecialTokenMatcher: leftmost-longest matching of special-token text.
#include "tokenizer/special_tokens.h"

#include <algorithm>

#include "core/check.h"

namespace longctx::tokenizer {

SpecialTokenMatcher::SpecialTokenMatcher(std::vector<Entry> entries)
    : entries_(std::move(entries)) {
  for (uint32_t i = 0; i < entries_.size(); ++i) {
    CHECK_MSG(!entries_[i].text.empty(), "special token with empty text");
    by_first_byte_[static_cast<unsigned char>(entries_[i].text[0])].push_back(i);
    has_user_defined_ = has_user_defined_ || !entries_[i].control;
  }
  for (auto& list : by_first_byte_) {
    std::stable_sort(list.begin(), list.end(), [&](uint32_t a, uint32_t b) {
      return entries_[a].text.size() > entries_[b].text.size();
    });
  }
}

const SpecialTokenMatcher::Entry* SpecialTokenMatcher::match_at(std::string_view text, size_t pos,
                                                                bool parse_control) const {
  const std::string_view rest = text.substr(pos);
  for (uint32_t i : by_first_byte_[static_cast<unsigned char>(rest[0])]) {
    const Entry& e = entries_[i];
    if (e.control && !parse_control) continue;
    if (rest.size() >= e.text.size() && rest.compare(0, e.text.size(), e.text) == 0) return &e;
  }
  return nullptr;
}

}  // namespace longctx::tokenizer
