// `longctx serve`: the OpenAI-compatible HTTP server over infer::Scheduler.
//   POST /v1/chat/completions, /v1/completions (streamed as server-sent events with stream: true)
//   GET  /v1/models, /health (503 while the model loads), /metrics (Prometheus text)
//   POST /tokenize, /detokenize
//   POST /v1/embeddings (an encoder model, e.g. a BERT sentence model: then the completion
//        endpoints answer 400)
//   POST /v1/ask (with --index): {"question", "k", "max_tokens"} -> an answer from the index's
//        passages citing them as [n], the citations (file, lines), unknown numbers, the passages
//   GET  /  the chat page (serve/webui.html, inside the binary)
// Errors are answered in OpenAI's shape ({"error": {"message", "type", "param", "code"}}): 400 for
// a bad body or a prompt past the context, 401 for a missing or wrong key, 404 for an unknown
// model or path, 413 for a body over the limit, 503 while loading or when the queue is full.
// A streaming client that goes away cancels its request: its sequence leaves at the next step.
#pragma once
#include <cstdint>
#include <string>

#include "core/status.h"
#include "infer/scheduler.h"

namespace longctx::serve {

struct ServeOptions {
  std::string model_path, host = "127.0.0.1", api_key, chat_template;
  int port = 8080, threads = 0;
  int64_t ctx = 0;  // context of the model as loaded (0: its own)
  infer::SchedulerOptions sched;
  int timeout_s = 600;                      // read/write timeout of a connection
  int64_t max_body_bytes = 8 << 20;         // larger bodies: 413
  bool webui = true, dequantize = false;
  // LoRA adapters applied at load (model/lora.h), with their scales (one for all or one each).
  std::vector<std::string> lora_files;
  std::vector<float> lora_scales;
  bool repack = true;  // with -np > 1: Model::pack_for_batches
  // POST /v1/ask: a retrieval index (rag/index.h) and its embedding model (default: the one
  // the index names).
  std::string index_path, embed_model;
};

// Listens, loads the model (answering 503 meanwhile), then serves until SIGINT/SIGTERM. Error
// when the address cannot be bound or the model cannot be loaded.
Status run_server(const ServeOptions& opt);

// The chat page's HTML (generated from serve/webui.html at build time).
extern const char* const kWebUiHtml;

}  // namespace longctx::serve
