// longctx serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np SLOTS] [--ctx N] [--kv-tokens N]
//                [--ubatch N] [--cache-type-k/-v T] [--api-key KEY | --api-key-file F]
//                [--max-queue N] [--timeout S] [--no-webui] [--no-repack] [--chat-template NAME] [-t N]
// The OpenAI-compatible HTTP server (serve/server.h). Every flag may also come from an
// environment variable: LONGCTX_ and the flag's name in capitals (LONGCTX_PORT, LONGCTX_API_KEY).
#include <fstream>
#include <sstream>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "kvcache/kv_cache.h"
#include "serve/server.h"

namespace longctx::cli {
namespace {

struct ServeFlags {
  serve::ServeOptions o;
  std::string api_key_file, cache_k = "f32", cache_v = "f32";
  int64_t kv_tokens = 0;
  bool no_webui = false, no_prefix_cache = false, no_repack = false;
};

int run_serve(ServeFlags& f) {
  serve::ServeOptions& o = f.o;
  if (o.port < 0 || o.port > 65535) return fail("--port must be in [0, 65535]");
  if (o.sched.slots < 1) return fail("--parallel must be >= 1");
  if (o.ctx < 0) return fail("--ctx must be >= 0");
  if (f.kv_tokens < 0) return fail("--kv-tokens must be >= 0");
  if (o.sched.ubatch < 1) return fail("--ubatch must be >= 1");
  if (o.sched.max_queue < 0) return fail("--max-queue must be >= 0");
  if (o.timeout_s < 1) return fail("--timeout must be >= 1");
  if (!f.api_key_file.empty()) {
    if (!o.api_key.empty()) return fail("--api-key and --api-key-file: give one");
    std::ifstream in(f.api_key_file);
    if (!in) return fail("--api-key-file: cannot read '" + f.api_key_file + "'");
    std::getline(in, o.api_key);
    while (!o.api_key.empty() && (o.api_key.back() == '\r' || o.api_key.back() == ' ')) o.api_key.pop_back();
    if (o.api_key.empty()) return fail("--api-key-file: '" + f.api_key_file + "' holds no key on its first line");
  }
  auto kt = kvcache::parse_cache_type(f.cache_k), vt = kvcache::parse_cache_type(f.cache_v);
  if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
  if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
  o.sched.k_type = *kt;
  o.sched.v_type = *vt;
  o.sched.cache_tokens = f.kv_tokens;
  o.sched.prefix_cache = !f.no_prefix_cache;
  o.webui = !f.no_webui;
  o.repack = !f.no_repack;
  ThreadPool::set_default_threads(o.threads);
  const Status s = serve::run_server(o);
  if (!s.ok()) return fail(s);
  return 0;
}

}  // namespace

void register_serve(CLI::App& app, Commands& cmds) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* c = app.add_subcommand("serve", "OpenAI-compatible HTTP server with continuous batching and a chat page");
  auto env = [](CLI::Option* opt, const char* name) { opt->envname(std::string("LONGCTX_") + name); };
  env(c->add_option("-m,--model", f->o.model_path, "Model: a GGUF or Hugging Face model, or a longctx checkpoint")
          ->required(),
      "MODEL");
  env(c->add_option("--host", f->o.host, "Address to listen on (default 127.0.0.1)"), "HOST");
  env(c->add_option("--port", f->o.port, "Port (default 8080)"), "PORT");
  env(c->add_option("--parallel", f->o.sched.slots, "Requests run at once (default 4; -np N also works)"), "PARALLEL");
  env(c->add_option("--ctx", f->o.ctx, "Context length of one request (default: the model's)"), "CTX");
  env(c->add_option("--kv-tokens", f->kv_tokens,
                    "KV cache pool, in positions shared by all requests (default: one context)"),
      "KV_TOKENS");
  env(c->add_option("--ubatch", f->o.sched.ubatch, "Prompt tokens per step (default 512)"), "UBATCH");
  env(c->add_option("--cache-type-k", f->cache_k, "K cache type: f32, f16 or q8_0 (default f32)"), "CACHE_TYPE_K");
  env(c->add_option("--cache-type-v", f->cache_v, "V cache type: f32, f16 or q8_0 (default f32)"), "CACHE_TYPE_V");
  env(c->add_option("--api-key", f->o.api_key, "Key clients must send (Authorization: Bearer KEY)"), "API_KEY");
  env(c->add_option("--api-key-file", f->api_key_file, "File whose first line is the key"), "API_KEY_FILE");
  env(c->add_option("--max-queue", f->o.sched.max_queue, "Waiting requests beyond which the server answers 503 (default 64)"),
      "MAX_QUEUE");
  env(c->add_option("--timeout", f->o.timeout_s, "Seconds a connection may take to send or receive (default 600)"),
      "TIMEOUT");
  env(c->add_flag("--no-webui", f->no_webui, "No chat page at /"), "NO_WEBUI");
  env(c->add_flag("--no-prefix-cache", f->no_prefix_cache, "Do not keep computed prompt pages for later requests"),
      "NO_PREFIX_CACHE");
  env(c->add_flag("--no-repack", f->no_repack,
                  "Do not keep Q4_0/Q4_1/Q8_0 matrices also in the AMX tiles' packed form (a second copy of their bytes; "
                  "without it each batched product repacks them)"),
      "NO_REPACK");
  env(c->add_option("--chat-template", f->o.chat_template, "chatml, llama2, llama3 or mistral (default: the model's)"),
      "CHAT_TEMPLATE");
  env(c->add_option("-t,--threads", f->o.threads, "Threads (default: all cores)"), "THREADS");
  env(c->add_flag("--dequantize", f->o.dequantize, "Every weight dequantized to fp32 on load"), "DEQUANTIZE");
  env(c->add_option("--lora", f->o.lora_files, "LoRA adapter (llama.cpp's GGUF adapter layout); repeat for several"),
      "LORA");
  env(c->add_option("--lora-scale", f->o.lora_scales, "Scale of the adapters (one for all, or one per --lora)"),
      "LORA_SCALE");
  env(c->add_option("--index", f->o.index_path, "A retrieval index (longctx index build): POST /v1/ask answers from it"),
      "INDEX");
  env(c->add_option("--embed-model", f->o.embed_model, "The index's embedding model (default: the one it names)"),
      "EMBED_MODEL");
  c->callback([f, &cmds] { cmds.run = [f] { return run_serve(*f); }; });
}

}  // namespace longctx::cli
