#include "serve/server.h"

#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <tuple>

#include "infer/chat_template.h"
#include "model/embedding.h"
#include "rag/ask.h"
#include "rag/index.h"
#include "model/lora.h"
#include "model/pretrained.h"
#include "serve/openai.h"

namespace longctx::serve {
namespace {

using nlohmann::json;

struct State {
  ServeOptions opt;
  std::atomic<bool> ready{false};
  std::optional<model::LoadedModel> loaded;
  std::unique_ptr<infer::Scheduler> sched;
  infer::ChatTemplate tmpl;
  std::vector<int32_t> chat_stop;  // the token ending an assistant turn
  std::string model_id;
  int64_t created = 0;
  std::atomic<int64_t> http_requests{0}, http_4xx{0};
  std::atomic<int> answering{0};  // completions submitted whose response is not yet written
  std::atomic<uint64_t> next_id{1};
  // Encoders: no scheduler; /v1/embeddings runs one request's texts at a time under this lock.
  bool encoder = false;
  std::mutex embed_mu;
  Arena embed_arena;
  // /v1/ask: the index and the model that embeds questions (its passes under embed_mu).
  std::optional<rag::Index> index;
  std::optional<model::LoadedModel> embedder;

  const tokenizer::BpeTokenizer& tok() const { return loaded->tokenizer; }
  int64_t context() const { return sched ? sched->context() : loaded->model->config().ctx; }
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(error_json(e), "application/json");
}

ApiError make_error(int status, std::string message, std::string type = "invalid_request_error",
                    std::string code = "") {
  ApiError e;
  e.status = status;
  e.message = std::move(message);
  e.type = std::move(type);
  e.code = std::move(code);
  return e;
}

int64_t now_s() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Reads a JSON object body for the small endpoints; false (answered 400) when it is not one.
bool object_body(const httplib::Request& req, httplib::Response& res, json* out) {
  *out = json::parse(req.body, nullptr, false);
  if (out->is_discarded() || !out->is_object()) {
    send_error(res, make_error(400, "the request body must be a JSON object"));
    return false;
  }
  return true;
}

bool wrong_model(State& st, const json& body, httplib::Response& res) {
  auto m = body.find("model");
  if (m == body.end() || !m->is_string() || *m == st.model_id || *m == "default") return false;
  ApiError e = make_error(404, "the model '" + m->get<std::string>() + "' does not exist (this server has '" +
                                   st.model_id + "')",
                          "invalid_request_error", "model_not_found");
  e.param = "model";
  send_error(res, e);
  return true;
}

std::string base64(const void* data, size_t n) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = uint32_t(p[i]) << 16 | (i + 1 < n ? uint32_t(p[i + 1]) << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
    out += kAlphabet[v >> 18 & 63];
    out += kAlphabet[v >> 12 & 63];
    out += i + 1 < n ? kAlphabet[v >> 6 & 63] : '=';
    out += i + 2 < n ? kAlphabet[v & 63] : '=';
  }
  return out;
}

// POST /v1/embeddings: input a string, a list of strings, a list of token ids or a list of such
// lists; encoding_format float (default) or base64 (little-endian float32, as OpenAI sends it).
// Texts past the context are cut to it, as `longctx embed` cuts them.
void handle_embeddings(State& st, const httplib::Request& req, httplib::Response& res) {
  json b;
  if (!object_body(req, res, &b)) return;
  if (!st.encoder || st.loaded->model->config().pooling == model::Pooling::kNone)
    return send_error(res, make_error(400, "this model gives no embeddings (serve an encoder such as a BERT sentence model)"));
  if (wrong_model(st, b, res)) return;
  auto bad_input = [&](const std::string& m) {
    ApiError e = make_error(400, m);
    e.param = "input";
    send_error(res, e);
  };
  auto in = b.find("input");
  if (in == b.end()) return bad_input("'input' is required: a string, a list of strings or of token id lists");
  std::string format = "float";
  if (auto f = b.find("encoding_format"); f != b.end()) {
    if (!f->is_string() || (*f != "float" && *f != "base64"))
      return send_error(res, make_error(400, "'encoding_format' must be 'float' or 'base64'"));
    format = f->get<std::string>();
  }
  const model::ModelConfig& c = st.loaded->model->config();
  const model::EmbedOptions opt = [&] {
    model::EmbedOptions o = model::default_embed_options(c);
    o.max_tokens = c.ctx;
    return o;
  }();
  std::vector<std::vector<int32_t>> texts;
  auto add_ids = [&](const json& list) -> bool {
    std::vector<int32_t> ids;
    for (const json& v : list) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= c.vocab_size) return false;
      ids.push_back(v.get<int32_t>());
    }
    if (ids.empty()) return false;
    if (static_cast<int64_t>(ids.size()) > c.ctx) ids.resize(c.ctx);
    texts.push_back(std::move(ids));
    return true;
  };
  auto add_text = [&](const json& s) -> Status {
    auto ids = model::embed_tokens(st.tok(), s.get<std::string>(), opt.max_tokens);
    if (!ids.ok()) return ids.status();
    texts.push_back(std::move(*ids));
    return Status::Ok();
  };
  if (in->is_string()) {
    if (Status s = add_text(*in); !s.ok()) return bad_input("input: " + s.message());
  } else if (in->is_array() && !in->empty() && in->front().is_number_integer()) {
    if (!add_ids(*in)) return bad_input("'input' holds something that is not a token id of this vocabulary");
  } else if (in->is_array() && !in->empty()) {
    if (in->size() > 2048) return bad_input("'input' holds more than 2048 items");
    for (size_t i = 0; i < in->size(); ++i) {
      const json& item = (*in)[i];
      if (item.is_string()) {
        if (Status s = add_text(item); !s.ok()) return bad_input("input[" + std::to_string(i) + "]: " + s.message());
      } else if (item.is_array()) {
        if (!add_ids(item)) return bad_input("input[" + std::to_string(i) + "] is not a non-empty list of token ids");
      } else {
        return bad_input("input[" + std::to_string(i) + "] is neither a string nor a list of token ids");
      }
    }
  } else {
    return bad_input("'input' must be a non-empty string, list of strings or list of token id lists");
  }
  int64_t tokens = 0;
  for (const auto& t : texts) tokens += static_cast<int64_t>(t.size());
  ++st.answering;
  std::vector<float> vec;
  {
    std::lock_guard<std::mutex> lock(st.embed_mu);
    vec = model::embed_batch(*st.loaded->model, ThreadPool::global(), st.embed_arena, texts, opt);
  }
  const int64_t D = c.model_dim;
  json data = json::array();
  for (size_t i = 0; i < texts.size(); ++i) {
    const float* v = vec.data() + i * D;
    json e = {{"object", "embedding"}, {"index", i}};
    if (format == "base64")
      e["embedding"] = base64(v, D * sizeof(float));
    else
      e["embedding"] = std::vector<float>(v, v + D);
    data.push_back(std::move(e));
  }
  res.set_content(dump(json{{"object", "list"},
                            {"data", std::move(data)},
                            {"model", st.model_id},
                            {"usage", {{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}),
                  "application/json");
  --st.answering;
}

// POST /v1/ask: retrieval, then the answer through the scheduler (greedy), its citations read
// from its text (rag::read_citations; numbers naming no passage are listed apart).
void handle_ask(State& st, const httplib::Request& req, httplib::Response& res) {
  json b;
  if (!object_body(req, res, &b)) return;
  if (!st.index) return send_error(res, make_error(404, "this server has no index (serve --index INDEX)"));
  if (wrong_model(st, b, res)) return;
  auto q = b.find("question");
  if (q == b.end() || !q->is_string() || q->get<std::string>().find_first_not_of(" \t\r\n") == std::string::npos)
    return send_error(res, make_error(400, "'question' must be a non-empty string"));
  int64_t k = 5, max_tokens = 256;
  for (auto [key, out, hi] : {std::tuple<const char*, int64_t*, int64_t>{"k", &k, 50}, {"max_tokens", &max_tokens, st.context()}}) {
    auto v = b.find(key);
    if (v == b.end()) continue;
    if (!v->is_number_integer() || v->get<int64_t>() < 1 || v->get<int64_t>() > hi)
      return send_error(res, make_error(400, std::string("'") + key + "' must be an integer in [1, " + std::to_string(hi) + "]"));
    *out = v->get<int64_t>();
  }
  const std::string question = q->get<std::string>();
  std::vector<rag::Hit> hits;
  {
    std::lock_guard<std::mutex> lock(st.embed_mu);
    model::Model& e = *st.embedder->model;
    auto v = rag::query_vector(e, st.embedder->tokenizer, question, st.embed_arena);
    if (!v.ok()) return send_error(res, make_error(400, "question: " + v.status().message()));
    hits = rag::search_exact(*st.index, v->data(), k);
  }
  std::vector<rag::Passage> passages;
  json ps = json::array();
  for (size_t i = 0; i < hits.size(); ++i) {
    const rag::Chunk& c = st.index->chunks[hits[i].chunk];
    const std::string& file = st.index->files[c.file].path;
    passages.push_back({file + ":" + std::to_string(c.line_begin) + "-" + std::to_string(c.line_end), c.text});
    ps.push_back({{"n", i + 1}, {"file", file}, {"line_begin", c.line_begin}, {"line_end", c.line_end},
                  {"score", hits[i].score}, {"text", c.text}});
  }
  std::vector<int32_t> prompt = st.tok().encode_special(st.tmpl.render(rag::ask_messages(question, passages), true));
  if (static_cast<int64_t>(prompt.size()) + max_tokens > st.context())
    return send_error(res, make_error(400, "the passages and the question take " + std::to_string(prompt.size()) +
                                               " tokens; with max_tokens " + std::to_string(max_tokens) +
                                               " that is past the context of " + std::to_string(st.context()),
                                      "invalid_request_error", "context_length_exceeded"));
  infer::GenOptions gen;
  gen.sampling.temp = 0.0f;
  gen.max_tokens = max_tokens;
  gen.stop_ids = st.chat_stop;
  auto r = std::make_shared<infer::Request>(std::move(prompt), gen);
  const int64_t prompt_tokens = static_cast<int64_t>(r->prompt().size());
  if (Status s = st.sched->submit(r); !s.ok()) {
    const bool busy = s.message().rfind("the server is ", 0) == 0;
    return send_error(res, make_error(busy ? 503 : 400, s.message(), busy ? "server_error" : "invalid_request_error"));
  }
  ++st.answering;
  std::vector<infer::TokenOut> toks;
  while (!r->wait(toks, std::chrono::milliseconds(200))) {
  }
  --st.answering;
  if (r->result().finish_reason == "error") return send_error(res, make_error(500, r->result().error, "server_error"));
  std::string answer;
  for (const auto& t : toks) answer += t.text;
  const rag::Citations cites = rag::read_citations(answer, static_cast<int>(passages.size()));
  json cs = json::array();
  for (int n : cites.cited) cs.push_back(ps[n - 1]);
  res.set_content(dump(json{{"object", "ask"},
                            {"model", st.model_id},
                            {"question", question},
                            {"answer", answer},
                            {"citations", cs},
                            {"unknown_citations", cites.unknown},
                            {"passages", ps},
                            {"finish_reason", r->result().finish_reason},
                            {"usage",
                             {{"prompt_tokens", prompt_tokens},
                              {"completion_tokens", static_cast<int64_t>(toks.size())},
                              {"total_tokens", prompt_tokens + static_cast<int64_t>(toks.size())}}}}),
                  "application/json");
}

void handle_completion(State& st, Endpoint endpoint, const httplib::Request& hreq, httplib::Response& res) {
  if (st.encoder)
    return send_error(res, make_error(400, "this model is an encoder: it answers /v1/embeddings, not completions"));
  const int64_t ctx = st.sched->context();
  ApiRequest req;
  ApiError err;
  if (!parse_request(hreq.body, endpoint, ctx - 1, &req, &err)) return send_error(res, err);
  if (!req.model.empty() && req.model != st.model_id && req.model != "default") {
    ApiError e = make_error(404, "the model '" + req.model + "' does not exist (this server has '" + st.model_id + "')",
                            "invalid_request_error", "model_not_found");
    e.param = "model";
    return send_error(res, e);
  }
  const tokenizer::BpeTokenizer& tok = st.tok();
  std::vector<int32_t> prompt;
  if (endpoint == Endpoint::kChat) {
    prompt = tok.encode_special(st.tmpl.render(req.messages, true));
    req.gen.stop_ids = st.chat_stop;
  } else if (req.prompt_is_ids) {
    prompt = req.prompt_ids;
    for (int32_t t : prompt)
      if (t >= tok.vocab_size() && t >= st.loaded->model->config().vocab_size) {
        ApiError e = make_error(400, "token id " + std::to_string(t) + " is not in the vocabulary");
        e.param = "prompt";
        return send_error(res, e);
      }
  } else {
    if (tok.add_bos()) prompt.push_back(tok.bos_id());
    tok.encode_append(req.prompt, prompt);
  }
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n == 0) return send_error(res, make_error(400, "the prompt is empty"));
  if (n >= ctx || (req.gen.max_tokens > 0 && n + req.gen.max_tokens > ctx)) {
    ApiError e = make_error(400,
                            "this model's context holds " + std::to_string(ctx) + " tokens; the request has " +
                                std::to_string(n) + " in the prompt" +
                                (req.gen.max_tokens > 0 ? " and asks for " + std::to_string(req.gen.max_tokens) : ""),
                            "invalid_request_error", "context_length_exceeded");
    e.param = endpoint == Endpoint::kChat ? "messages" : "prompt";
    return send_error(res, e);
  }
  if (!req.seeded) req.gen.sampling.seed = std::random_device{}() * 0x9E3779B97F4A7C15ULL + st.next_id.load();
  auto r = std::make_shared<infer::Request>(std::move(prompt), req.gen);
  const Status sub = st.sched->submit(r);
  if (!sub.ok()) {
    const bool busy = sub.message().rfind("the server is ", 0) == 0;  // busy, or shutting down
    return send_error(res, make_error(busy ? 503 : 400, sub.message(), busy ? "server_error" : "invalid_request_error"));
  }
  // Held by the response until it is written (the content providers keep a copy).
  ++st.answering;
  auto answering = std::shared_ptr<void>(nullptr, [&st](void*) { --st.answering; });
  const std::string id = (endpoint == Endpoint::kChat ? "chatcmpl-" : "cmpl-") + std::to_string(r->id());
  const int64_t created = now_s();
  auto piece = [&st](int32_t t) { return st.tok().token_bytes(t); };

  if (!req.stream) {
    auto toks = std::make_shared<std::vector<infer::TokenOut>>();
    auto body = [&st, r, req, id, created, piece, endpoint, toks]() {
      const infer::RequestResult& rr = r->result();
      if (rr.finish_reason == "error") return error_json(make_error(500, rr.error, "server_error"));
      std::string text;
      for (const auto& t : *toks) text += t.text;
      const json lp = req.gen.logprobs >= 0 ? logprobs_json(endpoint, *toks, piece, 0) : json();
      return response_json(req, id, st.model_id, created, text, rr, lp);
    };
    // A short answer is sent whole, with its status.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
    bool done = false;
    while (!done && std::chrono::steady_clock::now() < deadline) done = r->wait(*toks, std::chrono::milliseconds(100));
    if (done) {
      res.status = r->result().finish_reason == "error" ? 500 : 200;
      return res.set_content(body(), "application/json");
    }
    // A longer one is sent chunked: a space every 200 ms while it runs (JSON may start with
    // whitespace), so a client that went away is noticed and its request cancelled; then the
    // body (an error comes as an error object with status 200: the status has gone by then).
    res.set_chunked_content_provider(
        "application/json",
        [r, toks, body, answering](size_t, httplib::DataSink& sink) {
          if (!r->wait(*toks, std::chrono::milliseconds(200))) {
            if (!sink.write(" ", 1)) {
              r->cancel();
              return false;
            }
            return true;
          }
          const std::string b = body();
          if (!sink.write(b.data(), b.size())) return false;
          sink.done();
          return true;
        },
        [r](bool success) {
          if (!success) r->cancel();
        });
    return;
  }

  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  auto started = std::make_shared<bool>(false);
  auto text_off = std::make_shared<int64_t>(0);
  res.set_chunked_content_provider(
      "text/event-stream",
      [&st, r, req, id, created, started, text_off, piece, endpoint, answering](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) {
          if (!sink.write(s.data(), s.size())) {
            r->cancel();
            return false;
          }
          return true;
        };
        if (!*started) {
          *started = true;
          if (endpoint == Endpoint::kChat &&
              !write(chunk_event(req, id, st.model_id, created, "", "", json(), true)))
            return false;
        }
        std::vector<infer::TokenOut> toks;
        const bool done = r->wait(toks, std::chrono::milliseconds(500));
        for (const auto& t : toks) {
          if (t.text.empty() && req.gen.logprobs < 0) continue;
          const json lp = req.gen.logprobs >= 0 ? logprobs_json(endpoint, {t}, piece, *text_off) : json();
          *text_off += static_cast<int64_t>(t.text.size());
          if (!write(chunk_event(req, id, st.model_id, created, t.text, "", lp))) return false;
        }
        if (!done) {
          // Nothing new: a comment line, so a client that went away is noticed (the write fails).
          if (toks.empty() && !write(": keep-alive\n\n")) return false;
          return true;
        }
        const infer::RequestResult& rr = r->result();
        if (rr.finish_reason == "error") {
          write("data: " + error_json(make_error(500, rr.error, "server_error")) + "\n\n");
        } else {
          // Without include_usage the usage rides on the last chunk (llama.cpp's server does the same).
          const json usage = req.include_usage ? json() : usage_json(rr);
          if (!write(chunk_event(req, id, st.model_id, created, "", rr.finish_reason, json(), false, usage)))
            return false;
          if (req.include_usage && !write(usage_event(req, id, st.model_id, created, rr))) return false;
        }
        write("data: [DONE]\n\n");
        sink.done();
        return true;
      },
      [r](bool success) {
        if (!success) r->cancel();
      });
}

std::string metrics_text(const State& st) {
  const infer::SchedulerMetrics m = st.sched ? st.sched->metrics() : infer::SchedulerMetrics{};
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, const std::string& lines) {
    out += std::string("# HELP longctx_") + name + " " + help + "\n# TYPE longctx_" + name + " " + type + "\n" + lines;
  };
  auto line = [](const char* name, double v, const std::string& labels = "") {
    char b[64];
    std::snprintf(b, sizeof b, "%.17g", v);
    return std::string("longctx_") + name + (labels.empty() ? "" : "{" + labels + "}") + " " + b + "\n";
  };
  metric("requests_total", "counter", "Requests finished, by outcome.",
         line("requests_total", double(m.requests_done), "outcome=\"done\"") +
             line("requests_total", double(m.requests_cancelled), "outcome=\"cancelled\"") +
             line("requests_total", double(m.requests_error), "outcome=\"error\"") +
             line("requests_total", double(m.requests_rejected), "outcome=\"rejected\""));
  metric("http_requests_total", "counter", "HTTP requests received.", line("http_requests_total", double(st.http_requests)));
  metric("http_client_errors_total", "counter", "HTTP requests answered 4xx.",
         line("http_client_errors_total", double(st.http_4xx)));
  metric("prompt_tokens_total", "counter", "Prompt tokens of finished requests.",
         line("prompt_tokens_total", double(m.prompt_tokens)));
  metric("cached_tokens_total", "counter", "Prompt tokens taken from the prefix cache.",
         line("cached_tokens_total", double(m.cached_tokens)));
  metric("generated_tokens_total", "counter", "Tokens generated.", line("generated_tokens_total", double(m.generated_tokens)));
  metric("steps_total", "counter", "Batched forward passes.", line("steps_total", double(m.steps)));
  metric("busy_seconds_total", "counter", "Seconds the scheduler spent running passes.", line("busy_seconds_total", m.busy_s));
  metric("preemptions_total", "counter", "Requests preempted for lack of cache (recomputed later).",
         line("preemptions_total", double(m.preemptions)));
  metric("queue_length", "gauge", "Requests waiting for a slot.", line("queue_length", double(m.queue)));
  metric("running_sequences", "gauge", "Requests running.", line("running_sequences", double(m.running)));
  metric("slots", "gauge", "Sequences that may run at once.", line("slots", double(st.opt.sched.slots)));
  metric("kv_blocks", "gauge", "Blocks of the KV cache pool.", line("kv_blocks", double(m.kv_blocks)));
  metric("kv_blocks_used", "gauge", "Blocks of the pool in use (running sequences and the prefix cache).",
         line("kv_blocks_used", double(m.kv_blocks_used)));
  metric("prefix_cache_entries", "gauge", "Pages kept by the prefix cache.", line("prefix_cache_entries", double(m.prefix_entries)));
  metric("prefix_cache_blocks", "gauge", "Pool blocks the prefix cache holds.", line("prefix_cache_blocks", double(m.prefix_blocks)));
  metric("prefix_cache_hit_pages_total", "counter", "Pages adopted from the prefix cache.",
         line("prefix_cache_hit_pages_total", double(m.prefix_hit_pages)));
  metric("prefix_cache_evicted_pages_total", "counter", "Pages the prefix cache gave back.",
         line("prefix_cache_evicted_pages_total", double(m.prefix_evicted)));
  metric("prefix_share_granularity_tokens", "gauge",
         "Prefixes are shared in steps of this many tokens (1: at any token; else whole pages).",
         line("prefix_share_granularity_tokens", double(m.share_granularity)));
  metric("prefix_shared_tokens_total", "counter", "Prompt tokens taken below a page: from running sequences or kept partial pages.",
         line("prefix_shared_tokens_total", double(m.shared_tokens)));
  return out;
}

void add_routes(httplib::Server& svr, State& st) {
  svr.set_pre_routing_handler([&st](const httplib::Request& req, httplib::Response& res) {
    ++st.http_requests;
    const bool open = req.path == "/" || req.path == "/health" || req.path == "/index.html";
    if (!st.opt.api_key.empty() && !open) {
      const std::string want = "Bearer " + st.opt.api_key;
      const std::string got = req.get_header_value("Authorization");
      if (got != want) {
        send_error(res, make_error(401, got.empty() ? "an API key is required (Authorization: Bearer KEY)"
                                                     : "the API key is not valid",
                                   "authentication_error", "invalid_api_key"));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (!st.ready && req.path != "/" && req.path != "/index.html") {
      if (req.path == "/health") {
        res.status = 503;
        res.set_content(R"({"status":"loading model"})", "application/json");
      } else {
        send_error(res, make_error(503, "the model is loading", "server_error"));
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  svr.set_error_handler(httplib::Server::HandlerWithResponse([&st](const httplib::Request& req, httplib::Response& res) {
    if (res.status >= 400 && res.status < 500) ++st.http_4xx;
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string msg = res.status == 404   ? "there is no " + req.method + " " + req.path
                      : res.status == 413 ? "the request body is larger than " + std::to_string(st.opt.max_body_bytes) + " bytes"
                      : res.status == 405 ? req.method + " is not allowed on " + req.path
                                          : "the request could not be read";
    send_error(res, make_error(res.status, msg));
    return httplib::Server::HandlerResponse::Handled;
  }));

  svr.Get("/health", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"status":"ok"})", "application/json");
  });
  if (st.opt.webui) {
    auto page = [](const httplib::Request&, httplib::Response& res) {
      res.set_content(kWebUiHtml, "text/html; charset=utf-8");
    };
    svr.Get("/", page);
    svr.Get("/index.html", page);
  }
  svr.Get("/v1/models", [&st](const httplib::Request&, httplib::Response& res) {
    const auto& c = st.loaded->model->config();
    json m = {{"id", st.model_id},
              {"object", "model"},
              {"created", st.created},
              {"owned_by", "longctx"},
              {"meta",
               {{"n_ctx", st.context()},
                {"n_ctx_train", c.ctx},
                {"n_vocab", c.vocab_size},
                {"n_params", st.loaded->model->n_params()}}}};
    res.set_content(dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
  });
  svr.Get("/metrics", [&st](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(st), "text/plain; version=0.0.4");
  });
  svr.Post("/v1/completions", [&st](const httplib::Request& req, httplib::Response& res) {
    handle_completion(st, Endpoint::kCompletions, req, res);
  });
  svr.Post("/v1/chat/completions", [&st](const httplib::Request& req, httplib::Response& res) {
    handle_completion(st, Endpoint::kChat, req, res);
  });
  svr.Post("/v1/embeddings", [&st](const httplib::Request& req, httplib::Response& res) {
    handle_embeddings(st, req, res);
  });
  svr.Post("/v1/ask", [&st](const httplib::Request& req, httplib::Response& res) {
    if (st.encoder) return send_error(res, make_error(400, "this model is an encoder: it answers /v1/embeddings"));
    handle_ask(st, req, res);
  });
  svr.Post("/tokenize", [&st](const httplib::Request& req, httplib::Response& res) {
    json b;
    if (!object_body(req, res, &b)) return;
    auto c = b.find("content");
    if (c == b.end() || !c->is_string()) return send_error(res, make_error(400, "'content' must be a string"));
    auto sp = b.find("add_special");
    if (sp != b.end() && !sp->is_boolean()) return send_error(res, make_error(400, "'add_special' must be true or false"));
    auto wp = b.find("with_pieces");
    if (wp != b.end() && !wp->is_boolean()) return send_error(res, make_error(400, "'with_pieces' must be true or false"));
    std::vector<int32_t> ids;
    if (sp != b.end() && sp->get<bool>() && st.tok().add_bos()) ids.push_back(st.tok().bos_id());
    const std::vector<int32_t> body = st.tok().encode_special(c->get<std::string>());
    ids.insert(ids.end(), body.begin(), body.end());
    json out = json::array();
    for (int32_t t : ids) {
      if (wp != b.end() && wp->get<bool>())
        out.push_back({{"id", t}, {"piece", st.tok().token_bytes(t)}});
      else
        out.push_back(t);
    }
    res.set_content(dump(json{{"tokens", out}}), "application/json");
  });
  svr.Post("/detokenize", [&st](const httplib::Request& req, httplib::Response& res) {
    json b;
    if (!object_body(req, res, &b)) return;
    auto t = b.find("tokens");
    if (t == b.end() || !t->is_array()) return send_error(res, make_error(400, "'tokens' must be an array of token ids"));
    std::vector<int32_t> ids;
    for (const json& v : *t) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= st.tok().vocab_size())
        return send_error(res, make_error(400, "'tokens' holds something that is not a token id of this vocabulary"));
      ids.push_back(v.get<int32_t>());
    }
    res.set_content(dump(json{{"content", st.tok().decode(ids, true)}}), "application/json");
  });
}

Status load(State& st) {
  model::LoadOptions lo;
  lo.ctx = static_cast<int>(st.opt.ctx);
  lo.keep_quantized = !st.opt.dequantize;
  lo.use = model::LoadOptions::Use::kAny;  // an encoder serves /v1/embeddings
  auto loaded = model::load_model(st.opt.model_path, lo);
  if (!loaded.ok()) return loaded.status().Wrap("model '" + st.opt.model_path + "'");
  if (loaded->model->config().encoder) {
    if (!st.opt.lora_files.empty()) return Status::Error("--lora applies to decoders, not to an encoder");
    st.encoder = true;
    st.loaded.emplace(std::move(*loaded));
    st.loaded->model->set_integer_prefill(true);  // as `embed`
    return Status::Ok();
  }
  const auto& lf = st.opt.lora_files;
  const auto& ls = st.opt.lora_scales;
  if (!ls.empty() && ls.size() != 1 && ls.size() != lf.size())
    return Status::Error("give one --lora-scale for all adapters or one per --lora");
  for (size_t i = 0; i < lf.size(); ++i)
    LONGCTX_RETURN_IF_ERROR(
        model::apply_adapter_file(*loaded->model, lf[i], ls.empty() ? 1.0f : ls.size() == 1 ? ls[0] : ls[i]));
  st.loaded.emplace(std::move(*loaded));
  // Prompts on the integer tiles where the CPU has AMX (as generate and chat): one product per
  // step for all rows, decode and prompt alike.
  st.loaded->model->set_integer_prefill(true);
  if (st.opt.repack && st.opt.sched.slots > 1) {
    const int64_t packed = st.loaded->model->pack_for_batches(ThreadPool::global());
    if (packed > 0)
      std::fprintf(stderr, "serve: %.1f MiB of weights also packed for the AMX tiles of batched steps (--no-repack: off)\n",
                   packed / 1048576.0);
  }
  const tokenizer::BpeTokenizer& tok = st.tok();
  Expected<infer::ChatTemplate> tmpl = infer::ChatTemplate::choose(tok.chat_template(), st.opt.chat_template);
  if (!tmpl.ok()) {
    if (!st.opt.chat_template.empty()) return tmpl.status();
    std::fprintf(stderr, "serve: %s; chat requests use chatml\n", tmpl.status().message().c_str());
    tmpl = infer::ChatTemplate::by_name("chatml");
  }
  st.tmpl = *tmpl;
  const std::vector<int32_t> eot = tok.encode_special(st.tmpl.end_of_turn());
  if (eot.size() == 1) st.chat_stop = eot;
  if (!st.opt.index_path.empty()) {
    auto index = rag::load_index(st.opt.index_path);
    if (!index.ok()) return index.status();
    model::LoadOptions elo;
    elo.use = model::LoadOptions::Use::kEmbed;
    const std::string embed_path = st.opt.embed_model.empty() ? index->model : st.opt.embed_model;
    auto embedder = model::load_model(embed_path, elo);
    if (!embedder.ok()) return embedder.status().Wrap("--index's embedding model");
    embedder->model->set_integer_prefill(true);  // as `embed`, `index` and `ask`
    if (!rag::same_model(*index, rag::probe_vector(*embedder->model, embedder->tokenizer)))
      return Status::Error("index '" + st.opt.index_path + "' was built with another embedding model ('" + index->model +
                           "'), not '" + embed_path + "'");
    st.index.emplace(std::move(*index));
    st.embedder.emplace(std::move(*embedder));
  }
  st.sched = std::make_unique<infer::Scheduler>(*st.loaded->model, tok, ThreadPool::global(), st.opt.sched);
  return st.sched->start();
}

}  // namespace

namespace {
std::atomic<int> g_signal_pipe{-1};

void on_stop_signal(int sig) {
  const int fd = g_signal_pipe.load();
  const unsigned char b = static_cast<unsigned char>(sig);
  if (fd >= 0) (void)!write(fd, &b, 1);
}
}  // namespace

Status run_server(const ServeOptions& opt) {
  // SIGINT / SIGTERM: the handler writes the signal to a pipe that one thread reads to stop
  // the server (any thread may take the signal: OpenBLAS starts its own before this runs). A
  // client gone away must not kill the process (SIGPIPE).
  int fds[2];
  if (pipe(fds) != 0) return Status::Error("cannot create a pipe for signals");
  g_signal_pipe = fds[1];
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);

  State st;
  st.opt = opt;
  st.created = now_s();
  st.model_id = std::filesystem::path(opt.model_path).filename().string();
  if (st.model_id.empty()) st.model_id = opt.model_path;

  httplib::Server svr;
  const size_t threads = static_cast<size_t>(opt.sched.slots + opt.sched.max_queue + 8);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(static_cast<size_t>(opt.max_body_bytes));
  svr.set_read_timeout(opt.timeout_s, 0);
  svr.set_write_timeout(opt.timeout_s, 0);
  svr.set_keep_alive_timeout(2);  // an idle connection holds a thread (and shutdown) this long
  add_routes(svr, st);
  if (!svr.bind_to_port(opt.host, opt.port))
    return Status::Error("cannot listen on " + opt.host + ":" + std::to_string(opt.port) +
                         " (in use, or not an address of this machine)");

  std::atomic<bool> stopped{false};
  Status load_status = Status::Ok();
  std::thread loader([&] {
    const auto t0 = std::chrono::steady_clock::now();
    load_status = load(st);
    if (!load_status.ok()) {
      while (!svr.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      svr.stop();
      return;
    }
    st.ready = true;
    std::fprintf(stderr, "serve: %s ready in %.1f s on http://%s:%d (%d slots, context %lld, %lld cache blocks)\n",
                 st.model_id.c_str(), std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                 opt.host.c_str(), opt.port, st.encoder ? 0 : opt.sched.slots, static_cast<long long>(st.context()),
                 st.encoder ? 0LL : static_cast<long long>(st.sched->metrics().kv_blocks));
  });
  std::thread waiter([&] {
    unsigned char sig = 0;
    while (read(fds[0], &sig, 1) < 0 && errno == EINTR) {
    }
    if (sig != 0) {
      std::fprintf(stderr, "serve: stopping (signal %d)\n", sig);
      // Requests end first (with an error), so no connection waits for an answer, then the
      // listener and the connections.
      if (st.ready && st.sched) st.sched->stop();
      for (int i = 0; i < 300 && st.answering > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      while (!svr.is_running() && !stopped) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      svr.stop();
    }
  });
  std::fprintf(stderr, "serve: listening on http://%s:%d, loading %s\n", opt.host.c_str(), opt.port,
               opt.model_path.c_str());
  svr.listen_after_bind();
  stopped = true;
  loader.join();
  if (st.sched) st.sched->stop();
  // Wake the signal thread (it is waiting for a signal that may never come): a zero byte.
  const unsigned char zero = 0;
  (void)!write(fds[1], &zero, 1);
  waiter.join();
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  g_signal_pipe = -1;
  close(fds[0]);
  close(fds[1]);
  return load_status;
}

}  // namespace longctx::serve
