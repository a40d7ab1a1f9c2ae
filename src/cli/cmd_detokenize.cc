// longctx detokenize -m MODEL --ids 1,2,3 [--no-special]
// The text of token ids under a model's tokenizer, the inverse of tokenize: the tokens' bytes
// joined, control tokens as their text (<|im_end|>; HF's decode(skip_special_tokens=False)),
// or left out with --no-special. SentencePiece-style vocabularies drop the space their
// add_space_prefix put at the start, as HF's decoder does. The text is printed as it is (bytes
// that are not UTF-8 too), then one newline. Only the tokenizer is read, not the weights.
#include <cstdint>
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct DetokenizeFlags {
  std::string model, ids;
  bool no_special = false;
};

// "1,2,3" (spaces around the ids and enclosing brackets allowed: tokenize --json's list pastes
// in); "" is no tokens.
Expected<std::vector<int32_t>> parse_ids(std::string s, int vocab) {
  auto trim = [](std::string& t) {
    t.erase(0, t.find_first_not_of(" \t\n"));
    t.erase(t.find_last_not_of(" \t\n") + 1);
  };
  trim(s);
  if (s.size() >= 2 && s.front() == '[' && s.back() == ']') s = s.substr(1, s.size() - 2);
  trim(s);
  std::vector<int32_t> ids;
  if (s.empty()) return ids;
  std::stringstream ss(s + ",");  // the extra comma makes a trailing "1,2," show as an empty item
  for (std::string item; std::getline(ss, item, ',');) {
    trim(item);
    if (item.empty()) return Status::Error("--ids: '" + s + "' has an empty item (expected a list like 1,2,3)");
    if (item.find_first_not_of("0123456789") != std::string::npos)
      return Status::Error("--ids: '" + item + "' is not a token id (expected a comma-separated list like 1,2,3)");
    const int64_t v = item.size() > 9 ? INT64_MAX : std::stoll(item);
    if (v >= vocab)
      return Status::Error("--ids: token id " + item + " is outside the vocabulary [0, " + std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

int run_detokenize(const DetokenizeFlags& f) {
  auto tok = model::load_model_tokenizer(f.model);
  if (!tok.ok()) return fail(tok.status());
  auto ids = parse_ids(f.ids, tok->vocab_size());
  if (!ids.ok()) return fail(ids.status());
  const std::string text = tok->decode(*ids, !f.no_special);
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return 0;
}

}  // namespace

void register_detokenize(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("detokenize", "Print the text of token ids under a model's tokenizer");
  auto f = std::make_shared<DetokenizeFlags>();
  c->add_option("-m,--model", f->model, "Model: GGUF, or a Hugging Face directory (only its tokenizer is read)")
      ->required();
  c->add_option("--ids", f->ids, "Comma-separated token ids, e.g. 1,2,3")->required();
  c->add_flag("--no-special", f->no_special, "Leave control tokens (<|im_end|>) out of the text");
  c->callback([f, &cmds] { cmds.run = [f] { return run_detokenize(*f); }; });
}

}  // namespace longctx::cli
