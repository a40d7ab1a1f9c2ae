#include "rag/ask.h"

#include <algorithm>
#include <cctype>

namespace longctx::rag {

std::vector<infer::ChatMessage> ask_messages(const std::string& question, const std::vector<Passage>& passages) {
  std::string user = "Passages:\n";
  for (size_t i = 0; i < passages.size(); ++i)
    user += "\n[" + std::to_string(i + 1) + "] (" + passages[i].source + ")\n" + passages[i].text + "\n";
  user += "\nQuestion: " + question;
  return {{"system",
           "Answer the question using only the numbered passages. End each sentence with the number of the passage "
           "it comes from in square brackets, for example: \"Paris is the capital of France [2].\" If the passages "
           "do not contain the answer, say that you do not know."},
          {"user", user}};
}

Citations read_citations(const std::string& answer, int passages) {
  Citations out;
  auto add = [&](long n) {
    const bool known = n >= 1 && n <= passages;
    std::vector<int>& list = known ? out.cited : out.unknown;
    const int v = static_cast<int>(std::min<long>(n, 1 << 30));
    if (std::find(list.begin(), list.end(), v) == list.end()) list.push_back(v);
  };
  size_t i = 0;
  while ((i = answer.find('[', i)) != std::string::npos) {
    const size_t close = answer.find(']', i);
    if (close == std::string::npos) break;
    const std::string inside = answer.substr(i + 1, close - i - 1);
    // Only digits, commas, spaces and dashes: "[1]", "[1, 2]", "[2-4]".
    const bool numbers = !inside.empty() && inside.size() <= 64 &&
                         std::all_of(inside.begin(), inside.end(), [](unsigned char c) {
                           return std::isdigit(c) || c == ',' || c == ' ' || c == '-';
                         }) &&
                         std::any_of(inside.begin(), inside.end(), [](unsigned char c) { return std::isdigit(c); });
    if (numbers) {
      // The numbers of the bracket; a range that is reversed or longer than 20 makes the
      // whole bracket something other than a citation.
      std::vector<long> found;
      bool citation = true;
      size_t p = 0;
      while (p < inside.size() && citation) {
        while (p < inside.size() && !std::isdigit(static_cast<unsigned char>(inside[p]))) ++p;
        if (p >= inside.size()) break;
        size_t q = p;
        while (q < inside.size() && std::isdigit(static_cast<unsigned char>(inside[q]))) ++q;
        const long a = std::stol(inside.substr(p, std::min<size_t>(q - p, 9)));
        size_t r = q;
        while (r < inside.size() && inside[r] == ' ') ++r;
        if (r < inside.size() && inside[r] == '-') {
          size_t s = r + 1;
          while (s < inside.size() && inside[s] == ' ') ++s;
          size_t t = s;
          while (t < inside.size() && std::isdigit(static_cast<unsigned char>(inside[t]))) ++t;
          const long b = t > s ? std::stol(inside.substr(s, std::min<size_t>(t - s, 9))) : -1;
          if (b < a || b - a >= 20) {
            citation = false;
            break;
          }
          for (long n = a; n <= b; ++n) found.push_back(n);
          p = t;
          continue;
        }
        found.push_back(a);
        p = q;
      }
      if (citation)
        for (long n : found) add(n);
    }
    i = close + 1;
  }
  return out;
}

}  // namespace longctx::rag
