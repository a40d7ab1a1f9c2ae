#include "infer/attribution.h"

#include <algorithm>

namespace longctx::infer {

std::vector<int64_t> token_offsets(const tokenizer::BpeTokenizer& tok, const std::vector<int32_t>& ids,
                                   std::string* text) {
  std::vector<int64_t> out;
  out.reserve(ids.size());
  std::string all;
  for (int32_t id : ids) {
    out.push_back(static_cast<int64_t>(all.size()));
    const int32_t one[1] = {id};
    // A token's own bytes (decode would drop a SentencePiece token's leading space); control
    // tokens as their text.
    all += tok.is_special(id) ? tok.decode(one, /*render_special=*/true) : tok.token_bytes(id);
  }
  if (text) *text = std::move(all);
  return out;
}

std::vector<double> span_shares(const std::vector<double>& mass, const std::vector<int64_t>& offsets,
                                const std::vector<ByteSpan>& spans) {
  double total = 0;
  for (double m : mass) total += m;
  std::vector<double> out(spans.size(), 0.0);
  if (total <= 0) return out;
  for (size_t t = 0; t < offsets.size() && t < mass.size(); ++t)
    for (size_t s = 0; s < spans.size(); ++s)
      if (offsets[t] >= spans[s].begin && offsets[t] < spans[s].end) out[s] += mass[t];
  for (double& v : out) v /= total;
  return out;
}

std::vector<ByteSpan> line_spans(const std::string& text) {
  std::vector<ByteSpan> out;
  size_t b = 0;
  while (b <= text.size()) {
    size_t e = text.find('\n', b);
    if (e == std::string::npos) e = text.size();
    if (text.substr(b, e - b).find_first_not_of(" \t\r") != std::string::npos)
      out.push_back({static_cast<int64_t>(b), static_cast<int64_t>(e)});
    b = e + 1;
  }
  return out;
}

std::vector<LineShare> top_line_shares(const tokenizer::BpeTokenizer& tok, const std::vector<int32_t>& prompt,
                                       const std::vector<double>& mass, size_t top) {
  std::string text;
  const std::vector<int64_t> offsets = token_offsets(tok, prompt, &text);
  const std::vector<ByteSpan> spans = line_spans(text);
  const std::vector<double> shares = span_shares(mass, offsets, spans);
  std::vector<size_t> order(spans.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shares[a] > shares[b]; });
  std::vector<LineShare> out;
  for (size_t r = 0; r < std::min(order.size(), top); ++r) {
    const ByteSpan& sp = spans[order[r]];
    out.push_back({1 + std::count(text.begin(), text.begin() + sp.begin, '\n'), shares[order[r]],
                   text.substr(sp.begin, sp.end - sp.begin)});
  }
  return out;
}

}  // namespace longctx::infer
