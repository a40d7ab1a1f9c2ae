#include "infer/classify.h"

#include <algorithm>
#include <cctype>
#include <cmath>

namespace longctx::infer {
namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string joined(const std::vector<std::string>& labels) {
  std::string out;
  for (const auto& l : labels) out += (out.empty() ? "" : ", ") + l;
  return out;
}

}  // namespace

ClassifyPrompt classify_prompt(const tokenizer::BpeTokenizer& tok, const ChatTemplate* chat, const std::string& text,
                               const std::vector<std::string>& labels, const std::string& templ,
                               const std::string& instruction) {
  ClassifyPrompt out;
  std::string prompt;
  bool spaced = true;
  if (!templ.empty() || !chat) {
    const std::string t = templ.empty() ? "Text: {text}\nLabels: {labels}\nLabel:" : templ;
    prompt = replace_all(replace_all(t, "{labels}", joined(labels)), "{text}", text);
    spaced = !prompt.empty() && !std::isspace(static_cast<unsigned char>(prompt.back()));
  } else {
    const std::string q = instruction.empty() ? "Classify the text as one of: {labels}. Answer with the label only."
                                              : instruction;
    prompt = chat->render({{"user", replace_all(q, "{labels}", joined(labels)) + "\n\nText: " + text}}, true);
    spaced = false;
  }
  if (tok.add_bos()) out.prompt.push_back(tok.bos_id());
  tok.encode_append(prompt, out.prompt, /*parse_special=*/chat != nullptr && templ.empty());
  for (const auto& l : labels) out.continuations.push_back(tok.encode(spaced ? " " + l : l));
  return out;
}

Expected<std::vector<LabelScore>> score_labels(Session& s, const ClassifyPrompt& p, const std::vector<std::string>& labels,
                                               bool length_norm) {
  std::vector<LabelScore> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    LabelScore ls;
    ls.label = labels[i];
    ls.tokens = p.continuations[i];
    if (ls.tokens.empty()) return Status::Error("the label '" + labels[i] + "' has no tokens");
    std::vector<int32_t> ids = p.prompt;
    for (int32_t t : ls.tokens) {
      LONGCTX_RETURN_IF_ERROR(s.set_tokens(ids, nullptr));
      const std::vector<float>& logits = s.logits();
      double mx = logits[0];
      for (float v : logits) mx = std::max(mx, double(v));
      double sum = 0;
      for (float v : logits) sum += std::exp(double(v) - mx);
      ls.logprob += double(logits[t]) - mx - std::log(sum);
      ids.push_back(t);
    }
    ls.score = length_norm ? ls.logprob / double(ls.tokens.size()) : ls.logprob;
    out.push_back(std::move(ls));
  }
  double mx = out[0].score;
  for (const auto& l : out) mx = std::max(mx, l.score);
  double sum = 0;
  for (const auto& l : out) sum += std::exp(l.score - mx);
  for (auto& l : out) l.prob = std::exp(l.score - mx) / sum;
  return out;
}

}  // namespace longctx::infer
