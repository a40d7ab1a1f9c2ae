// longctx classify -m MODEL --labels a,b,c (-p TEXT | -f FILE.jsonl) [--template T] [--length-norm] [--json]
// longctx sentiment -m MODEL (-p TEXT | -f FILE.jsonl) [--json]
// Each label scored by the log-likelihood the model gives it after the text's prompt
// (infer/classify.h), probabilities by a softmax over the labels. -f reads JSON lines with a
// "text" (and optionally the right "label": the accuracy is printed at the end). sentiment is
// classify with the labels positive, negative and neutral and a sentiment question.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <algorithm>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/chat_template.h"
#include "infer/classify.h"
#include "infer/session.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct ClassifyFlags {
  std::string model, labels, prompt, file, templ, chat_template, instruction;
  bool json = false, length_norm = false, dequantize = false;
  int threads = 0;
};

struct Item {
  std::string text, gold;
};

Expected<std::vector<Item>> read_items(const ClassifyFlags& f) {
  std::vector<Item> items;
  if (!f.prompt.empty()) {
    items.push_back({f.prompt, ""});
    return items;
  }
  std::ifstream in(f.file, std::ios::binary);
  if (!in) return Status::Error("cannot read '" + f.file + "'");
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = "'" + f.file + "' line " + std::to_string(n) + ": ";
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::Error(at + "not a JSON object");
    auto t = j.find("text");
    if (t == j.end() || !t->is_string()) return Status::Error(at + "\"text\" must be a string");
    if (t->get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos) return Status::Error(at + "the text is empty");
    Item item{t->get<std::string>(), ""};
    if (auto g = j.find("label"); g != j.end()) {
      if (!g->is_string()) return Status::Error(at + "\"label\" must be a string");
      item.gold = g->get<std::string>();
    }
    items.push_back(std::move(item));
  }
  if (items.empty()) return Status::Error("'" + f.file + "' holds no text");
  return items;
}

int run_classify(const ClassifyFlags& f, const char* cmd) {
  if (f.prompt.empty() == f.file.empty()) return fail(std::string(cmd) + ": give -p TEXT or -f FILE.jsonl, not both");
  if (!f.prompt.empty() && f.prompt.find_first_not_of(" \t\r\n") == std::string::npos)
    return fail(std::string(cmd) + ": the text is empty");
  std::vector<std::string> labels;
  {
    std::stringstream ss(f.labels);
    std::string l;
    while (std::getline(ss, l, ',')) {
      while (!l.empty() && l.front() == ' ') l.erase(l.begin());
      while (!l.empty() && l.back() == ' ') l.pop_back();
      if (l.empty()) return fail(std::string(cmd) + ": --labels has an empty label");
      if (std::find(labels.begin(), labels.end(), l) != labels.end())
        return fail(std::string(cmd) + ": --labels names '" + l + "' twice");
      labels.push_back(l);
    }
  }
  if (labels.size() < 2) return fail(std::string(cmd) + ": --labels needs at least two labels (a,b,...)");
  if (!f.templ.empty() && f.templ.find("{text}") == std::string::npos)
    return fail(std::string(cmd) + ": --template must hold {text}");
  auto items = read_items(f);
  if (!items.ok()) return fail(items.status().Wrap(cmd));
  for (const Item& it : *items)
    if (!it.gold.empty() && std::find(labels.begin(), labels.end(), it.gold) == labels.end())
      return fail(std::string(cmd) + ": a line's \"label\" '" + it.gold + "' is not one of --labels");
  ThreadPool::set_default_threads(f.threads);
  model::LoadOptions lo;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  const tokenizer::BpeTokenizer& tok = loaded->tokenizer;
  std::optional<infer::ChatTemplate> chat;
  if (f.templ.empty()) {
    auto t = infer::ChatTemplate::choose(tok.chat_template(), f.chat_template);
    if (t.ok()) chat = *t;
    else if (!f.chat_template.empty()) return fail(t.status());
  }
  infer::Session session(*loaded->model, tok, ThreadPool::global());
  const bool tty = isatty(STDERR_FILENO) == 1 && items->size() > 1;
  const auto t0 = std::chrono::steady_clock::now();
  int64_t right = 0, graded = 0;
  for (size_t i = 0; i < items->size(); ++i) {
    const Item& it = (*items)[i];
    const infer::ClassifyPrompt p =
        infer::classify_prompt(tok, chat ? &*chat : nullptr, it.text, labels, f.templ, f.instruction);
    auto scores = infer::score_labels(session, p, labels, f.length_norm);
    if (!scores.ok()) return fail(scores.status().Wrap(std::string(cmd) + ": text " + std::to_string(i + 1)));
    size_t best = 0;
    for (size_t l = 1; l < scores->size(); ++l)
      if ((*scores)[l].prob > (*scores)[best].prob) best = l;
    if (!it.gold.empty()) {
      ++graded;
      right += (*scores)[best].label == it.gold;
    }
    if (tty) std::fprintf(stderr, "\r\033[K");
    if (f.json) {
      nlohmann::json ls = nlohmann::json::array();
      for (const auto& s : *scores)
        ls.push_back({{"label", s.label}, {"prob", s.prob}, {"logprob", s.logprob}, {"score", s.score}, {"tokens", s.tokens}});
      nlohmann::json out = {{"text", it.text}, {"label", (*scores)[best].label}, {"labels", ls}, {"prompt_tokens", p.prompt}};
      if (!it.gold.empty()) out["gold"] = it.gold;
      std::printf("%s\n", out.dump().c_str());
    } else {
      std::string probs;
      for (const auto& s : *scores) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s%s %.3f", probs.empty() ? "" : "  ", s.label.c_str(), s.prob);
        probs += buf;
      }
      std::printf("%s\t%s\n", (*scores)[best].label.c_str(), probs.c_str());
    }
    std::fflush(stdout);
    if (tty) {
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::fprintf(stderr, "[%s] %zu / %zu texts | %.1f texts/s | ETA %s", cmd, i + 1, items->size(), (i + 1) / s,
                   format_duration(s / (i + 1) * (items->size() - i - 1)).c_str());
    }
  }
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (graded > 0)
    std::fprintf(stderr, "%s: accuracy %.4f (%lld of %lld)\n", cmd, double(right) / graded, static_cast<long long>(right),
                 static_cast<long long>(graded));
  return 0;
}

void add_common(CLI::App* c, ClassifyFlags& f) {
  c->add_option("-m,--model", f.model, "Language model")->required();
  c->add_option("-p,--prompt", f.prompt, "The text");
  c->add_option("-f,--file", f.file, "JSON lines: {\"text\": ..., \"label\": ... (optional)}");
  c->add_option("--chat-template", f.chat_template, "chatml, llama2, llama3 or mistral (default: the model's)");
  c->add_flag("--json", f.json, "One JSON object per text: label, each label's prob, logprob and tokens");
  add_dequantize_flag(c, f.dequantize);
  c->add_option("-t,--threads", f.threads, "Threads (default: all cores)");
}

}  // namespace

void register_classify(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("classify", "Classify texts by the likelihood a model gives each label");
  auto f = std::make_shared<ClassifyFlags>();
  add_common(c, *f);
  c->add_option("--labels", f->labels, "The labels, comma-separated")->required();
  c->add_option("--template", f->templ, "A plain prompt holding {text} (and {labels}); the label follows it");
  c->add_option("--instruction", f->instruction, "The chat question (default: classify as one of {labels})");
  c->add_flag("--length-norm", f->length_norm, "Score labels by their mean log-probability per token");
  c->callback([f, &cmds] { cmds.run = [f] { return run_classify(*f, "classify"); }; });

  auto* s = app.add_subcommand("sentiment", "Sentiment of texts: positive, negative or neutral");
  auto g = std::make_shared<ClassifyFlags>();
  add_common(s, *g);
  g->labels = "positive,negative,neutral";
  g->instruction = "Is the sentiment of this text positive, negative or neutral? Answer with one word.";
  s->callback([g, &cmds] { cmds.run = [g] { return run_classify(*g, "sentiment"); }; });
}

}  // namespace longctx::cli
