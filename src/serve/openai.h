// The OpenAI API's JSON, without the HTTP: request bodies of /v1/completions and
// /v1/chat/completions read into what the scheduler runs (every field checked: a wrong type or
// value is an error naming the field, answered 400), and the responses and stream chunks
// written back. Pure functions of their input (the fuzz target's subject).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "infer/chat_template.h"
#include "infer/scheduler.h"

namespace longctx::serve {

enum class Endpoint { kCompletions, kChat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::kCompletions;
  std::string model;
  // /v1/completions: the prompt as text, or as token ids.
  std::string prompt;
  std::vector<int32_t> prompt_ids;
  bool prompt_is_ids = false;
  // /v1/chat/completions.
  std::vector<infer::ChatMessage> messages;
  infer::GenOptions gen;
  bool seeded = false;  // seed given (else the server draws one)
  bool stream = false, include_usage = false;
  bool logprobs = false;  // chat: logprobs: true (then gen.logprobs = top_logprobs)
};

// An error of the request, with the HTTP status and the field it is about ("" when none).
struct ApiError {
  int status = 400;
  std::string message, param, type = "invalid_request_error", code;
};

// Reads a request body. max_tokens beyond max_tokens_limit (the context) is refused; the
// default is 16 for completions (OpenAI's) and the rest of the context for chat.
bool parse_request(std::string_view body, Endpoint endpoint, int64_t max_tokens_limit, ApiRequest* out,
                   ApiError* err);

// {"error": {"message", "type", "param", "code"}}.
std::string error_json(const ApiError& e);

// The usage object: prompt, completion and total tokens, and prompt_tokens_details.cached_tokens.
nlohmann::json usage_json(const infer::RequestResult& r);

// The logprobs of tokens in the endpoint's shape; piece(id) is a token's bytes.
nlohmann::json logprobs_json(Endpoint endpoint, const std::vector<infer::TokenOut>& tokens,
                             const std::function<std::string(int32_t)>& piece, int64_t text_offset0);

// A whole response (not streamed).
std::string response_json(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                          const std::string& text, const infer::RequestResult& r, const nlohmann::json& logprobs);
// One server-sent event of a stream: "data: {...}\n\n". delta text for a chunk; finish_reason
// empty until the last; role_chunk: the chat stream's first chunk (role, no content); usage
// (not null) rides on the chunk.
std::string chunk_event(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                        const std::string& text, const std::string& finish_reason, const nlohmann::json& logprobs,
                        bool role_chunk = false, const nlohmann::json& usage = nullptr);
// The chunk carrying usage (include_usage: choices empty).
std::string usage_event(const ApiRequest& req, const std::string& id, const std::string& model, int64_t created,
                        const infer::RequestResult& r);

// JSON text of j with invalid UTF-8 replaced (token bytes may split characters).
std::string dump(const nlohmann::json& j);

}  // namespace longctx::serve
