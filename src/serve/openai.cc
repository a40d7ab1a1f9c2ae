#include "serve/openai.h"

#include <cmath>
#include <limits>

namespace longctx::serve {

using nlohmann::json;

namespace {

// Field readers: each returns false with *err set when the field is there with the wrong type
// or value; an absent (or null) field leaves the target as it is.
struct Reader {
  const json& body;
  ApiError* err;

  const json* get(const char* name) const {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
  }
  bool fail(const char* name, const std::string& what) const {
    err->status = 400;
    err->param = name;
    err->message = std::string("'") + name + "' " + what;
    return false;
  }
  bool number(const char* name, double lo, double hi, float* out) const {
    const json* v = get(name);
    if (!v) return true;
    if (!v->is_number()) return fail(name, "must be a number");
    const double d = v->get<double>();
    if (!(d >= lo && d <= hi)) return fail(name, "must be in [" + fmt(lo) + ", " + fmt(hi) + "]");
    *out = static_cast<float>(d);
    return true;
  }
  template <class T>
  bool integer(const char* name, int64_t lo, int64_t hi, T* out) const {
    const json* v = get(name);
    if (!v) return true;
    if (!v->is_number_integer()) return fail(name, "must be an integer");
    // Unsigned values beyond int64 read as unsigned.
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi))
      return fail(name, "must be at most " + std::to_string(hi));
    const int64_t i = v->get<int64_t>();
    if (i < lo || i > hi) return fail(name, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    *out = static_cast<T>(i);
    return true;
  }
  bool boolean(const char* name, bool* out) const {
    const json* v = get(name);
    if (!v) return true;
    if (!v->is_boolean()) return fail(name, "must be true or false");
    *out = v->get<bool>();
    return true;
  }
  bool string(const char* name, std::string* out) const {
    const json* v = get(name);
    if (!v) return true;
    if (!v->is_string()) return fail(name, "must be a string");
    *out = v->get<std::string>();
    return true;
  }
  static std::string fmt(double d) {
    char b[32];
    std::snprintf(b, sizeof b, "%g", d);
    return b;
  }
};

bool read_stop(const Reader& r, std::vector<std::string>* out) {
  const json* v = r.get("stop");
  if (!v) return true;
  if (v->is_string()) {
    if (v->get<std::string>().empty()) return r.fail("stop", "must not be empty");
    out->push_back(v->get<std::string>());
    return true;
  }
  if (!v->is_array()) return r.fail("stop", "must be a string or an array of strings");
  if (v->size() > 16) return r.fail("stop", "may hold at most 16 strings");
  for (const json& s : *v) {
    if (!s.is_string() || s.get<std::string>().empty()) return r.fail("stop", "must hold non-empty strings");
    out->push_back(s.get<std::string>());
  }
  return true;
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
bool read_content(const Reader& r, const json& c, std::string* out) {
  if (c.is_string()) {
    *out = c.get<std::string>();
    return true;
  }
  if (!c.is_array()) return r.fail("messages", "content must be a string or an array of text parts");
  for (const json& part : c) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") ||
        !part["text"].is_string())
      return r.fail("messages", "content parts must be {\"type\": \"text\", \"text\": string}");
    *out += part["text"].get<std::string>();
  }
  return true;
}

}  // namespace

bool parse_request(std::string_view body, Endpoint endpoint, int64_t max_tokens_limit, ApiRequest* out,
                   ApiError* err) {
  *out = ApiRequest{};
  *err = ApiError{};
  out->endpoint = endpoint;
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) {
    err->message = "the request body is not valid JSON";
    return false;
  }
  if (!j.is_object()) {
    err->message = "the request body must be a JSON object";
    return false;
  }
  const Reader r{j, err};
  auto& g = out->gen;
  // OpenAI's defaults: temperature 1, top_p 1; top_k and min_p (llama.cpp's) off.
  g.sampling.temp = 1.0f;
  g.sampling.top_p = 1.0f;
  g.sampling.top_k = 0;
  g.sampling.min_p = 0.0f;
  g.sampling.repeat_penalty = 1.0f;
  if (!r.string("model", &out->model)) return false;
  if (!r.number("temperature", 0, 2, &g.sampling.temp)) return false;
  float top_p = 1;
  if (!r.number("top_p", 0, 1, &top_p)) return false;
  if (top_p <= 0) return r.fail("top_p", "must be greater than 0");
  g.sampling.top_p = top_p;
  if (!r.integer("top_k", 0, std::numeric_limits<int32_t>::max(), &g.sampling.top_k)) return false;
  if (!r.number("min_p", 0, 0.999999, &g.sampling.min_p)) return false;
  if (!r.number("repeat_penalty", 0.000001, 100, &g.sampling.repeat_penalty)) return false;
  if (!r.integer("repeat_last_n", 0, 1 << 20, &g.sampling.repeat_last_n)) return false;
  if (!r.number("frequency_penalty", -2, 2, &g.frequency_penalty)) return false;
  if (!r.number("presence_penalty", -2, 2, &g.presence_penalty)) return false;
  if (const json* s = r.get("seed")) {
    if (!s->is_number_integer()) return r.fail("seed", "must be an integer");
    g.sampling.seed = s->is_number_unsigned() ? s->get<uint64_t>() : static_cast<uint64_t>(s->get<int64_t>());
    out->seeded = true;
  }
  if (!read_stop(r, &g.stop)) return false;
  int n = 1;
  if (!r.integer("n", 1, 1, &n)) return false;
  if (!r.boolean("stream", &out->stream)) return false;
  if (const json* so = r.get("stream_options")) {
    if (!so->is_object()) return r.fail("stream_options", "must be an object");
    const Reader sr{*so, err};
    if (!sr.boolean("include_usage", &out->include_usage)) return false;
  }
  const int64_t default_max = endpoint == Endpoint::kCompletions ? std::min<int64_t>(16, max_tokens_limit) : -1;
  g.max_tokens = default_max;
  const char* max_name = r.get("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (const json* v = r.get(max_name)) {
    if (!v->is_number_integer()) return r.fail(max_name, "must be an integer");
    if (v->is_number_unsigned() ? v->get<uint64_t>() > static_cast<uint64_t>(max_tokens_limit)
                                : v->get<int64_t>() > max_tokens_limit)
      return r.fail(max_name, "is more than the context holds: at most " + std::to_string(max_tokens_limit) +
                                  " tokens can follow this prompt");
    if (v->get<int64_t>() < 1) return r.fail(max_name, "must be >= 1");
    g.max_tokens = v->get<int64_t>();
  }

  if (endpoint == Endpoint::kCompletions) {
    int logprobs = -1;
    if (!r.integer("logprobs", 0, 20, &logprobs)) return false;
    g.logprobs = logprobs;
    const json* p = r.get("prompt");
    if (!p) return r.fail("prompt", "is required");
    if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
    if (p->is_string()) {
      out->prompt = p->get<std::string>();
    } else if (p->is_array() && !p->empty() && p->front().is_number()) {
      out->prompt_is_ids = true;
      for (const json& t : *p) {
        if (!t.is_number_integer() || t.get<int64_t>() < 0 || t.get<int64_t>() > std::numeric_limits<int32_t>::max())
          return r.fail("prompt", "token ids must be integers >= 0");
        out->prompt_ids.push_back(t.get<int32_t>());
      }
    } else {
      return r.fail("prompt", "must be a string, or an array of token ids");
    }
  } else {
    const json* m = r.get("messages");
    if (!m) return r.fail("messages", "is required");
    if (!m->is_array() || m->empty()) return r.fail("messages", "must be a non-empty array");
    for (const json& msg : *m) {
      if (!msg.is_object()) return r.fail("messages", "must hold objects");
      auto role = msg.find("role");
      if (role == msg.end() || !role->is_string()) return r.fail("messages", "each message needs a string 'role'");
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant" && rs != "developer")
        return r.fail("messages", "role '" + rs + "' is not one of system, developer, user, assistant");
      infer::ChatMessage cm;
      cm.role = rs == "developer" ? "system" : rs;
      auto content = msg.find("content");
      if (content != msg.end() && !content->is_null() && !read_content(r, *content, &cm.content)) return false;
      out->messages.push_back(std::move(cm));
    }
    bool lp = false;
    if (!r.boolean("logprobs", &lp)) return false;
    int top = 0;
    if (!r.integer("top_logprobs", 0, 20, &top)) return false;
    if (r.get("top_logprobs") && !lp) return r.fail("top_logprobs", "needs 'logprobs': true");
    out->logprobs = lp;
    g.logprobs = lp ? top : -1;
  }
  const Status v = g.validate();
  if (!v.ok()) {
    err->message = v.message();
    return false;
  }
  return true;
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string error_json(const ApiError& e) {
  json o = {{"message", e.message}, {"type", e.type}};
  o["param"] = e.param.empty() ? json() : json(e.param);
  o["code"] = e.code.empty() ? json() : json(e.code);
  return dump(json{{"error", o}});
}

json usage_json(const infer::RequestResult& r) {
  return {{"prompt_tokens", r.prompt_tokens},
          {"completion_tokens", r.completion_tokens},
          {"total_tokens", r.prompt_tokens + r.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", r.cached_tokens}}}};
}

namespace {
json bytes_of(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(int(c));
  return b;
}
}  // namespace

json logprobs_json(Endpoint endpoint, const std::vector<infer::TokenOut>& tokens,
                   const std::function<std::string(int32_t)>& piece, int64_t text_offset0) {
  if (endpoint == Endpoint::kChat) {
    json content = json::array();
    for (const auto& t : tokens) {
      if (t.id < 0) continue;
      const std::string p = piece(t.id);
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string q = piece(id);
        top.push_back({{"token", q}, {"logprob", lp}, {"bytes", bytes_of(q)}});
      }
      content.push_back({{"token", p}, {"logprob", t.logprob}, {"bytes", bytes_of(p)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
  int64_t off = text_offset0;
  for (const auto& t : tokens) {
    if (t.id < 0) continue;
    const std::string p = piece(t.id);
    toks.push_back(p);
    lps.push_back(t.logprob);
    json top = json::object();
    for (const auto& [id, lp] : t.top) top[piece(id)] = lp;  // invalid UTF-8 is replaced by dump()
    tops.push_back(top);
    offs.push_back(off);
    off += static_cast<int64_t>(p.size());
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

std::string response_json(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                          const std::string& text, const infer::RequestResult& r, const json& logprobs) {
  json choice = {{"index", 0}, {"finish_reason", r.finish_reason}, {"logprobs", logprobs}};
  json o = {{"id", id}, {"created", created}, {"model", model}};
  if (req.endpoint == Endpoint::kChat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
    o["object"] = "chat.completion";
  } else {
    choice["text"] = text;
    o["object"] = "text_completion";
  }
  o["choices"] = json::array({choice});
  o["usage"] = usage_json(r);
  return dump(o);
}

std::string chunk_event(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                        const std::string& text, const std::string& finish_reason, const json& logprobs,
                        bool role_chunk, const json& usage) {
  json choice = {{"index", 0}, {"logprobs", logprobs}};
  choice["finish_reason"] = finish_reason.empty() ? json() : json(finish_reason);
  json o = {{"id", id}, {"created", created}, {"model", model}};
  if (req.endpoint == Endpoint::kChat) {
    o["object"] = "chat.completion.chunk";
    if (role_chunk)
      choice["delta"] = {{"role", "assistant"}, {"content", ""}};
    else if (finish_reason.empty() || !text.empty())
      choice["delta"] = {{"content", text}};
    else
      choice["delta"] = json::object();
  } else {
    o["object"] = "text_completion";
    choice["text"] = text;
  }
  o["choices"] = json::array({choice});
  if (!usage.is_null()) o["usage"] = usage;
  return "data: " + dump(o) + "\n\n";
}

std::string usage_event(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                        const infer::RequestResult& r) {
  json o = {{"id", id},
            {"created", created},
            {"model", model},
            {"object", req.endpoint == Endpoint::kChat ? "chat.completion.chunk" : "text_completion"},
            {"choices", json::array()},
            {"usage", usage_json(r)}};
  return "data: " + dump(o) + "\n\n";
}

}  // namespace longctx::serve
