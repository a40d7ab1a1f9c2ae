// longctx ask -m LLM --index INDEX "question" [-k 5] [--embed-model E] [-n 256] [--json]
// A retrieval-augmented answer that cites its sources: the k passages of the index nearest the
// question (rag/index.h) go, numbered, into a chat prompt that asks for [n] citations
// (rag/ask.h); the answer streams, then its sources are listed as file:lines. Citations that
// name no retrieved passage are flagged, never listed as sources. An answer that cites nothing
// gets the passage the model names when asked "Source: [" after it (marked as asked). Greedy by
// default (--temp).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "infer/attribution.h"
#include "infer/chat_template.h"
#include "infer/session.h"
#include "model/embedding.h"
#include "model/pretrained.h"
#include "rag/ask.h"
#include "rag/index.h"

namespace longctx::cli {
namespace {

struct AskFlags {
  std::string model, index, question, embed_model, chat_template;
  int64_t k = 5, n = 256;
  int threads = 0;
  bool json = false, attribution = false;
  infer::SamplerOptions s;
};

int run_ask(AskFlags f) {
  if (f.k < 1 || f.k > 50) return fail("ask: -k must be in [1, 50]");
  if (f.n < 1) return fail("ask: -n must be >= 1");
  if (f.question.find_first_not_of(" \t\r\n") == std::string::npos) return fail("ask: the question is empty");
  if (Status sv = f.s.validate(); !sv.ok()) return fail(sv);
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  auto index = rag::load_index(f.index);
  if (!index.ok()) return fail(index.status());
  if (index->chunks.empty()) return fail("ask: the index '" + f.index + "' holds no passages");
  const std::string embed_path = f.embed_model.empty() ? index->model : f.embed_model;
  std::vector<rag::Hit> hits;
  {
    model::LoadOptions lo;
    lo.use = model::LoadOptions::Use::kEmbed;
    auto embedder = model::load_model(embed_path, lo);
    if (!embedder.ok()) return fail(embedder.status());
    model::Model& e = *embedder->model;
    e.set_integer_prefill(true);  // as `embed` and `index`
    if (!rag::same_model(*index, rag::probe_vector(e, embedder->tokenizer)))
      return fail("ask: '" + f.index + "' was built with another embedding model ('" + index->model + "'), not '" +
                  embed_path + "'");
    Arena arena;
    auto q = rag::query_vector(e, embedder->tokenizer, f.question, arena);
    if (!q.ok()) return fail(q.status().Wrap("ask: the question"));
    hits = rag::search_exact(*index, q->data(), f.k);
  }
  std::vector<rag::Passage> passages;
  for (const rag::Hit& h : hits) {
    const rag::Chunk& c = index->chunks[h.chunk];
    passages.push_back({index->files[c.file].path + ":" + std::to_string(c.line_begin) + "-" + std::to_string(c.line_end),
                        c.text});
  }
  auto loaded = model::load_model(f.model);
  if (!loaded.ok()) return fail(loaded.status());
  loaded->model->set_integer_prefill(true);
  const tokenizer::BpeTokenizer& tok = loaded->tokenizer;
  auto tmpl = infer::ChatTemplate::choose(tok.chat_template(), f.chat_template);
  if (!tmpl.ok()) return fail(tmpl.status().Wrap("model '" + f.model + "' (give --chat-template)"));
  std::vector<int32_t> prompt = tok.encode_special(tmpl->render(rag::ask_messages(f.question, passages), true));
  if (tok.add_bos() && (prompt.empty() || prompt[0] != tok.bos_id())) prompt.insert(prompt.begin(), tok.bos_id());
  if (static_cast<int64_t>(prompt.size()) + f.n > loaded->model->config().ctx)
    return fail("ask: the passages and question take " + std::to_string(prompt.size()) + " tokens; with -n " +
                std::to_string(f.n) + " that is past the model's context of " +
                std::to_string(loaded->model->config().ctx) + " (use a smaller -k or index chunks)");
  std::vector<int32_t> stop;
  const std::vector<int32_t> eot = tok.encode_special(tmpl->end_of_turn());
  if (eot.size() == 1) stop.push_back(eot[0]);
  infer::Session session(*loaded->model, tok, pool);
  session.set_attribution(f.attribution);
  infer::GenerateStats st;
  if (Status s = session.set_tokens(prompt, &st); !s.ok()) return fail(s);
  infer::Sampler sampler(f.s);
  std::string answer;
  std::vector<int32_t> generated;
  Status gs = session.continue_tokens(f.n, sampler, stop, [&](int32_t id) {
    generated.push_back(id);
    const std::string& piece = tok.token_bytes(id);
    answer += piece;
    if (!f.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
  }, &st);
  if (!gs.ok()) return fail(gs);
  // Attribution: the share of the answer's attention (every layer and head, the rows that
  // produced its tokens) each passage received, and the question.
  std::vector<double> shares;
  std::vector<int64_t> span_tokens;
  double question_share = 0;
  if (f.attribution) {
    std::string text;
    const std::vector<int64_t> offsets = infer::token_offsets(tok, prompt, &text);
    std::vector<infer::ByteSpan> spans;
    size_t from = 0;
    for (size_t i = 0; i < passages.size(); ++i) {
      const std::string block = "[" + std::to_string(i + 1) + "] (" + passages[i].source + ")\n" + passages[i].text;
      const size_t at = text.find(block, from);
      spans.push_back(at == std::string::npos ? infer::ByteSpan{0, 0}
                                              : infer::ByteSpan{static_cast<int64_t>(at), static_cast<int64_t>(at + block.size())});
      if (at != std::string::npos) from = at + block.size();
    }
    const std::string q = "Question: " + f.question;
    const size_t qa = text.find(q, from);
    spans.push_back(qa == std::string::npos ? infer::ByteSpan{0, 0}
                                            : infer::ByteSpan{static_cast<int64_t>(qa), static_cast<int64_t>(qa + q.size())});
    shares = infer::span_shares(session.attribution(), offsets, spans);
    for (const auto& sp : spans) {
      int64_t n = 0;
      for (int64_t o : offsets) n += o >= sp.begin && o < sp.end;
      span_tokens.push_back(n);
    }
    question_share = shares.back();
    shares.pop_back();
    session.set_attribution(false);
  }
  rag::Citations cites = rag::read_citations(answer, static_cast<int>(passages.size()));
  // An answer without any citation (small models rarely write them): the model is asked which
  // passage it used, by reading its next-token scores after "Source: [" at the end of its own
  // answer, over the passage numbers; the best one is cited, marked as asked.
  bool asked = false;
  if (cites.cited.empty() && cites.unknown.empty()) {
    std::vector<int32_t> ids = prompt;
    ids.insert(ids.end(), generated.begin(), generated.end());
    tok.encode_append("\nSource: [", ids);
    if (static_cast<int64_t>(ids.size()) < loaded->model->config().ctx && session.set_tokens(ids, &st).ok()) {
      const std::vector<float>& logits = session.logits();
      int best = 0;
      float best_logit = 0;
      for (int n = 1; n <= static_cast<int>(passages.size()); ++n) {
        const std::vector<int32_t> digit = tok.encode(std::to_string(n));
        if (digit.size() != 1) continue;  // a number of several tokens cannot be read from one step
        if (best == 0 || logits[digit[0]] > best_logit) best = n, best_logit = logits[digit[0]];
      }
      if (best > 0) {
        cites.cited.push_back(best);
        asked = true;
      }
    }
  }
  if (f.json) {
    nlohmann::json ps = nlohmann::json::array(), cs = nlohmann::json::array();
    for (size_t i = 0; i < hits.size(); ++i) {
      const rag::Chunk& c = index->chunks[hits[i].chunk];
      ps.push_back({{"n", i + 1},
                    {"file", index->files[c.file].path},
                    {"line_begin", c.line_begin},
                    {"line_end", c.line_end},
                    {"score", hits[i].score},
                    {"text", c.text}});
    }
    for (size_t i = 0; i < shares.size(); ++i) {
      ps[i]["attention_share"] = shares[i];
      ps[i]["tokens"] = span_tokens[i];
    }
    for (int n : cites.cited) cs.push_back(ps[n - 1]);
    std::printf("%s\n", nlohmann::json({{"question", f.question},
                                        {"answer", answer},
                                        {"citations", cs},
                                        {"citations_asked", asked},
                                        {"unknown_citations", cites.unknown},
                                        {"passages", ps},
                                        {"prompt_tokens", prompt.size()},
                                        {"generated_tokens", st.generated},
                                        {"question_attention_share", question_share}})
                            .dump()
                            .c_str());
    return 0;
  }
  std::printf(asked ? "\n\nSources (the answer cited none; asked which passage it used, the model names):\n"
                     : "\n\nSources:\n");
  if (cites.cited.empty()) std::printf("  (the answer cites no passage)\n");
  for (int n : cites.cited) std::printf("  [%d] %s\n", n, passages[n - 1].source.c_str());
  if (f.attribution) {
    std::printf("Attention of the answer (every layer and head; the rest went to the instructions, the template and "
                "the answer itself):\n");
    for (size_t i = 0; i < shares.size(); ++i) {
      const bool cited = std::find(cites.cited.begin(), cites.cited.end(), static_cast<int>(i + 1)) != cites.cited.end();
      std::printf("  [%zu] %5.1f%%  %s%s\n", i + 1, 100 * shares[i], passages[i].source.c_str(), cited ? "  (cited)" : "");
    }
    std::printf("  question %5.1f%%\n", 100 * question_share);
  }
  if (!cites.unknown.empty()) {
    std::string list;
    for (int n : cites.unknown) list += (list.empty() ? "[" : ", [") + std::to_string(n) + "]";
    std::printf("  warning: %s name%s no retrieved passage (there were %zu)\n", list.c_str(),
                cites.unknown.size() == 1 ? "s" : "", passages.size());
  }
  return 0;
}

}  // namespace

void register_ask(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("ask", "Answer a question from an index's passages, citing them as [n]");
  auto f = std::make_shared<AskFlags>();
  f->s.temp = 0.0f;
  c->add_option("-m,--model", f->model, "Language model with a chat template (e.g. SmolLM2-135M-Instruct)")->required();
  c->add_option("--index", f->index, "Index from `longctx index build`")->required();
  c->add_option("QUESTION", f->question, "The question")->required();
  c->add_option("-k", f->k, "Passages to retrieve (default 5)");
  c->add_option("--embed-model", f->embed_model, "Embedding model (default: the one the index names)");
  c->add_option("-n", f->n, "Most tokens to generate (default 256)");
  c->add_option("--chat-template", f->chat_template, "chatml, llama2, llama3 or mistral (default: the model's)");
  c->add_flag("--json", f->json, "One JSON object: answer, citations, unknown citations, passages");
  c->add_flag("--attribution", f->attribution,
              "Report the share of the answer's attention each passage received (layers and heads summed)");
  add_sampling_flags(c, f->s);
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_ask(*f); }; });
}

}  // namespace longctx::cli
