// Retrieval-augmented answers that cite their sources: the prompt that puts numbered passages
// before a question and asks for [n] citations, and the reading of the citations an answer
// makes (which passages it names, and which numbers name none).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "infer/chat_template.h"

namespace longctx::rag {

struct Passage {
  std::string source;  // "file:first-last" (lines)
  std::string text;
};

// System and user messages: the passages numbered from 1, each with its source, then the question.
std::vector<infer::ChatMessage> ask_messages(const std::string& question, const std::vector<Passage>& passages);

struct Citations {
  std::vector<int> cited;    // passage numbers in [1, passages], in order of first mention
  std::vector<int> unknown;  // numbers in brackets that name no passage, in order of first mention
};
// Reads [n], [n, m] and [n][m] (also [n-m] ranges of at most 20 numbers; a bracket with a
// reversed or longer range is no citation) from an answer.
Citations read_citations(const std::string& answer, int passages);

}  // namespace longctx::rag
