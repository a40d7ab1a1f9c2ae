#include "eval/perplexity.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <vector>

#include "core/arena.h"
#include "kernels/cross_entropy.h"

namespace longctx::eval {

Expected<LengthResult> evaluate_length(model::Model& model, ThreadPool& pool, const train::TokenStream& stream,
                                       int64_t length, const EvalOptions& opt,
                                       const std::function<void(int64_t, int64_t)>& progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t N = static_cast<int64_t>(stream.tokens.size()), L = length;
  if (L < 1) return Status::Error("evaluation length must be >= 1");
  if (L > model.config().ctx)
    return Status::Error("length " + std::to_string(L) + " is past the model's context " +
                         std::to_string(model.config().ctx));
  if (opt.stride < 0 || opt.stride > L)
    return Status::Error("stride " + std::to_string(opt.stride) + " must be in [1, length " + std::to_string(L) + "]");
  const int64_t S = opt.stride == 0 ? L : opt.stride;
  if (N < L + 1)
    return Status::Error("the held-out text has " + std::to_string(N) + " tokens, too few for one window of " +
                         std::to_string(L) + " + 1");
  int64_t windows = (N - 1 - L) / S + 1;
  if (opt.max_tokens > 0) {  // the first window scores L tokens, each later one S
    const int64_t need = opt.max_tokens <= L ? 1 : 1 + (opt.max_tokens - L + S - 1) / S;
    windows = std::min(windows, need);
  }
  const int64_t V = model.config().vocab_size;
  const bool cached = opt.ubatch > 0 && L > opt.ubatch;
  const int64_t batch = cached ? 1 : std::clamp<int64_t>((int64_t(1) << 24) / (L * V), 1, 64);
  kvcache::KvCache cache;
  if (cached) {
    auto plan = model::plan_memory(model.config(), model.weight_bytes(), L, opt.ubatch, opt.k_type, opt.v_type);
    if (!plan.ok()) return plan.status();
    LONGCTX_RETURN_IF_ERROR(model::check_memory(*plan));
    auto made = model.make_cache(L, {opt.k_type, opt.v_type, opt.ubatch});
    if (!made.ok()) return made.status();
    cache = std::move(*made);
  }
  LengthResult r;
  r.length = L;
  r.stride = opt.stride;
  r.windows = windows;
  double nats = 0;
  Arena arena;
  std::vector<int32_t> in, tg;
  std::vector<float> logits;
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    const int64_t B = std::min(batch, windows - w0);
    in.resize(B * L);
    tg.resize(B * L);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t w = w0 + b, start = w * S;
      const int64_t first_scored = w == 0 ? 0 : L - S;
      for (int64_t t = 0; t < L; ++t) {
        in[b * L + t] = stream.tokens[start + t];
        const bool scored = t >= first_scored;
        tg[b * L + t] = scored ? stream.tokens[start + t + 1] : -1;
        if (scored) {
          ++r.scored_tokens;
          r.scored_bytes += stream.token_bytes[start + t + 1];
        }
      }
    }
    if (cached) {  // one window, through the cache in passes of ubatch
      logits.resize(opt.ubatch * V);
      for (int64_t t = 0; t < L; t += opt.ubatch) {
        const int64_t n = std::min(opt.ubatch, L - t);
        LONGCTX_RETURN_IF_ERROR(model.forward_cached(pool, arena, cache, in.data() + t, n, t, logits.data(), true));
        nats += kernels::cross_entropy(pool, logits.data(), tg.data() + t, n, V, nullptr, 0.0f);
      }
    } else {
      logits.resize(B * L * V);
      arena.reset();
      model.forward_logits(pool, arena, in.data(), B, L, logits.data());
      nats += kernels::cross_entropy(pool, logits.data(), tg.data(), B * L, V, nullptr, 0.0f);
    }
    if (progress) progress(w0 + B, windows);
  }
  r.loss = nats / static_cast<double>(r.scored_tokens);
  r.ppl = std::exp(r.loss);
  r.bpb = r.scored_bytes > 0 ? nats / std::log(2.0) / static_cast<double>(r.scored_bytes) : 0.0;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace longctx::eval
