// Classification by likelihood: each label is scored by the log-probability a language model
// gives its tokens as the continuation of a prompt (optionally per token: length-normalised), and
// the scores become probabilities by a softmax over the labels. The prompt is computed once per
// text; each label's tokens then run one at a time through the session's cache.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "infer/chat_template.h"
#include "infer/session.h"

namespace longctx::infer {

struct LabelScore {
  std::string label;
  std::vector<int32_t> tokens;  // the continuation scored
  double logprob = 0;           // sum over its tokens of log P(token | prompt, tokens before)
  double score = 0;             // logprob, or logprob / tokens when length-normalised
  double prob = 0;              // softmax of the scores over the labels
};

struct ClassifyPrompt {
  std::vector<int32_t> prompt;
  std::vector<std::vector<int32_t>> continuations;  // one per label
};

// The prompt of `text` for `labels`: with a chat template, a user message asking for one of the
// labels and the assistant's turn opened, each label the answer's text; without one (or with
// `templ`, a prompt holding {text} and optionally {labels}), the prompt as it is and each label
// after a space (no space when the prompt ends in whitespace). `instruction` replaces the chat
// question ({labels} is replaced by the labels joined with ", ").
ClassifyPrompt classify_prompt(const tokenizer::BpeTokenizer& tok, const ChatTemplate* chat, const std::string& text,
                               const std::vector<std::string>& labels, const std::string& templ,
                               const std::string& instruction);

// Scores every label. Error when a continuation is empty or the prompt and a label pass the
// context.
Expected<std::vector<LabelScore>> score_labels(Session& s, const ClassifyPrompt& p, const std::vector<std::string>& labels,
                                               bool length_norm);

}  // namespace longctx::infer
