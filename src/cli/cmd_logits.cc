// longctx logits -m MODEL (-p TEXT | --tokens 1,2,3) -o OUT.npy [--decode] [--dequantize] [-t N]
// Writes the logits of every position, float32 [n_tokens, vocab], as a NumPy .npy file, and
// prints the token ids as one JSON line: for comparing engines (tests/llamacpp/compare_logits.py)
// and inspecting a model. By default the tokens run as one prefill pass; --decode runs them one
// at a time through the KV cache, the path generation takes.
#include <cstdio>
#include <cstring>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct LogitsFlags {
  std::string model, prompt, tokens, out;
  bool decode = false, dequantize = false;
  LoraFlags lora;
  int threads = 0;
};

Expected<std::vector<int32_t>> parse_token_list(const std::string& s, int vocab) {
  std::vector<int32_t> ids;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || v < 0 || v >= vocab)
      return Status::Error("--tokens: '" + item + "' is not a token id in [0, " + std::to_string(vocab) + ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  return ids;
}

// NumPy .npy version 1.0: magic, header length, a Python dict literal padded with spaces to a
// multiple of 64 bytes (ending in '\n'), then the little-endian float32 data.
Status write_npy(const std::string& path, const std::vector<float>& data, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  return io::write_file_atomic(path, [&](std::FILE* f) -> Status {
    const uint16_t len = static_cast<uint16_t>(header.size());
    const unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, static_cast<unsigned char>(len & 0xFF),
                                   static_cast<unsigned char>(len >> 8)};
    if (std::fwrite(pre, 1, 10, f) != 10 || std::fwrite(header.data(), 1, header.size(), f) != header.size() ||
        std::fwrite(data.data(), sizeof(float), data.size(), f) != data.size())
      return Status::Error("write failed");
    return Status::Ok();
  });
}

int run_logits(const LogitsFlags& f) {
  if (f.prompt.empty() == f.tokens.empty()) return fail("logits: give exactly one of -p TEXT and --tokens LIST");
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  model::LoadOptions lo;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  if (Status s = apply_lora_flags(f.lora, *loaded->model); !s.ok()) return fail(s);
  model::Model& m = *loaded->model;
  const auto& tok = loaded->tokenizer;
  const int64_t V = m.config().vocab_size;
  std::vector<int32_t> ids;
  if (!f.tokens.empty()) {
    auto parsed = parse_token_list(f.tokens, m.config().vocab_size);
    if (!parsed.ok()) return fail(parsed.status());
    ids = std::move(*parsed);
  } else {
    if (tok.add_bos()) ids.push_back(tok.bos_id());
    tok.encode_append(f.prompt, ids);
  }
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n == 0) return fail("logits: no tokens");
  if (n > m.config().ctx)
    return fail("logits: " + std::to_string(n) + " tokens are longer than the context of " +
                std::to_string(m.config().ctx));
  std::vector<float> logits(n * V);
  Arena arena;
  auto made = m.make_cache(n);
  if (!made.ok()) return fail(made.status());
  kvcache::KvCache cache = std::move(*made);
  if (f.decode) {
    for (int64_t t = 0; t < n; ++t)
      if (auto st = m.forward_cached(pool, arena, cache, ids.data() + t, 1, t, logits.data() + t * V, false); !st.ok())
        return fail(st);
  } else {
    if (auto st = m.forward_cached(pool, arena, cache, ids.data(), n, 0, logits.data(), true); !st.ok())
      return fail(st);
  }
  Status st = write_npy(f.out, logits, n, V);
  if (!st.ok()) return fail(st.Wrap("logits: '" + f.out + "'"));
  std::printf("%s\n", nlohmann::json({{"tokens", ids}, {"shape", {n, V}}, {"out", f.out}}).dump().c_str());
  return 0;
}

}  // namespace

void register_logits(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("logits", "Write a model's logits for a prompt as a .npy file (comparing engines)");
  auto f = std::make_shared<LogitsFlags>();
  c->add_option("-m,--model", f->model, "Model (GGUF)")->required();
  c->add_option("-p,--prompt", f->prompt, "Prompt text (tokenized as generate does)");
  c->add_option("--tokens", f->tokens, "Comma-separated token ids instead of a prompt");
  c->add_option("-o,--out", f->out, "Output .npy: float32 [tokens, vocab] (written atomically)")->required();
  c->add_flag("--decode", f->decode, "One token at a time through the KV cache (default: one prefill pass)");
  add_dequantize_flag(c, f->dequantize);
  add_lora_flags(c, f->lora);
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_logits(*f); }; });
}

}  // namespace longctx::cli
