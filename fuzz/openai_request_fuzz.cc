// libFuzzer target for the server's request bodies: the bytes are read as a /v1/completions and
// as a /v1/chat/completions body (serve::parse_request). Each must be accepted or refused with
// an error naming the problem, never crash or throw; an accepted request is then answered as
// the server would (the chat prompt rendered, the response, a stream chunk and the logprobs
// written with arbitrary token bytes).
// Seeds: fuzz/corpus/openai/.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "infer/chat_template.h"
#include "serve/openai.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longctx;
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  for (serve::Endpoint e : {serve::Endpoint::kCompletions, serve::Endpoint::kChat}) {
    serve::ApiRequest req;
    serve::ApiError err;
    if (!serve::parse_request(body, e, 4096, &req, &err)) {
      if (err.message.empty() || err.status < 400 || err.status > 499) __builtin_trap();
      (void)serve::error_json(err);
      continue;
    }
    if (e == serve::Endpoint::kChat) (void)infer::ChatTemplate::by_name("chatml")->render(req.messages, true);
    infer::RequestResult r;
    r.finish_reason = "stop";
    r.prompt_tokens = static_cast<int64_t>(size);
    std::vector<infer::TokenOut> toks(1);
    toks[0].id = static_cast<int32_t>(size % 7);
    toks[0].top = {{1, -0.5f}, {2, -1.5f}};
    // Token bytes from the input itself: invalid UTF-8 must be written as valid JSON text.
    auto piece = [&](int32_t id) { return std::string(body.substr(0, std::min<size_t>(size, id + 3))); };
    const auto lp = serve::logprobs_json(e, toks, piece, 0);
    (void)serve::response_json(req, "id", "model", 0, std::string(body.substr(0, 16)), r, lp);
    (void)serve::chunk_event(req, "id", "model", 0, std::string(body.substr(0, 8)), "", lp);
    (void)serve::usage_event(req, "id", "model", 0, r);
  }
  return 0;
}
