#include "infer/session.h"

#include <chrono>

namespace longctx::infer {

Session::Session(model::Model& model, const tokenizer::BpeTokenizer& tok, ThreadPool& pool)
    : model_(model), tok_(tok), pool_(pool) {}

Expected<GenerateStats> Session::generate(const std::string& prompt, int64_t n, const SamplerOptions& sampling,
                                          const std::function<void(const std::string&)>& on_text) {
  LONGCTX_RETURN_IF_ERROR(sampling.validate());
  if (n < 0) return Status::Error("-n must be >= 0");
  const int64_t ctx = model_.config().ctx;
  std::vector<int32_t> tokens{tok_.bos_id()};
  tok_.encode_append(prompt, tokens);
  if (static_cast<int64_t>(tokens.size()) > ctx)
    return Status::Error("the prompt is " + std::to_string(tokens.size()) + " tokens, longer than the context of " +
                         std::to_string(ctx));
  GenerateStats st;
  st.prompt_tokens = static_cast<int64_t>(tokens.size());
  n = std::min<int64_t>(n, ctx - st.prompt_tokens);
  model::KvCache cache = model_.make_cache(ctx);
  const int64_t V = model_.config().vocab_size;
  std::vector<float> logits(V);
  Sampler sampler(sampling);
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  model_.forward_cached(pool_, arena_, cache, tokens.data(), st.prompt_tokens, 0, logits.data(), false);
  auto t1 = clock::now();
  st.prefill_s = std::chrono::duration<double>(t1 - t0).count();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t next = sampler.sample(logits.data(), V, tokens);
    if (next == tok_.eos_id()) {
      st.stopped_at_eos = true;
      break;
    }
    tokens.push_back(next);
    ++st.generated;
    on_text(tok_.token_bytes(next));
    if (i + 1 == n) break;
    model_.forward_cached(pool_, arena_, cache, &tokens.back(), 1, static_cast<int64_t>(tokens.size()) - 1,
                          logits.data(), false);
  }
  st.decode_s = std::chrono::duration<double>(clock::now() - t1).count();
  return st;
}

}  // namespace longctx::infer
