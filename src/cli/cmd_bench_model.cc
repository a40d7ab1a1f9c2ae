// longctx bench -m MODEL [-p 512] [-n 128] [-r 5] [-t 2] [--json]
// Inference speed in the manner of llama.cpp's llama-bench: pp<P> is the prefill of P tokens
// into an empty cache in one pass, tg<N> the generation of N tokens one at a time from an empty
// cache; both on random token ids, reported as tokens/s mean ± standard deviation over -r runs.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"
#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/vec.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct Stats {
  double mean = 0, sd = 0;
};

Stats stats_of(const std::vector<double>& v) {
  Stats s;
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
  s.sd = v.size() > 1 ? std::sqrt(s.sd / (v.size() - 1)) : 0.0;
  return s;
}

}  // namespace

int run_bench_model(const BenchModelFlags& f) {
  if (f.prompt < 0 || f.gen < 0 || f.reps < 1) return fail("-p and -n must be >= 0 and -r >= 1");
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  model::LoadOptions lo;
  lo.keep_quantized = !f.dequantize;
  auto loaded = model::load_model(f.model, lo);
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  const int64_t ctx = m.config().ctx, V = m.config().vocab_size;
  if (f.prompt > ctx || f.gen > ctx)
    return fail("-p and -n must fit the model's context of " + std::to_string(ctx));
  Rng rng(1);
  Arena arena;
  std::vector<float> logits(V);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng.below(V));
    return t;
  };
  using clock = std::chrono::steady_clock;
  model::KvCache cache = m.make_cache(std::max(f.prompt, f.gen));
  nlohmann::json rows = nlohmann::json::array();
  if (!f.json) {
    std::printf("| model | threads | test | t/s |\n|---|---|---|---|\n");
    std::fflush(stdout);
  }
  auto report = [&](const std::string& test, int64_t n_tokens, const std::vector<double>& secs) {
    std::vector<double> tps;
    for (double s : secs) tps.push_back(n_tokens / s);
    const Stats s = stats_of(tps);
    if (f.json) {
      rows.push_back({{"test", test}, {"tokens_per_s", s.mean}, {"sd", s.sd}, {"reps", f.reps}});
    } else {
      std::printf("| %s | %d | %s | %.2f ± %.2f |\n", f.model.c_str(), pool.threads(), test.c_str(), s.mean, s.sd);
      std::fflush(stdout);
    }
  };
  if (f.prompt > 0) {
    std::vector<double> secs;
    for (int r = -1; r < f.reps; ++r) {  // one warm-up run
      const auto toks = random_tokens(f.prompt);
      const auto t0 = clock::now();
      m.forward_cached(pool, arena, cache, toks.data(), f.prompt, 0, logits.data(), false);
      if (r >= 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    report("pp" + std::to_string(f.prompt), f.prompt, secs);
  }
  if (f.gen > 0) {
    std::vector<double> secs;
    for (int r = -1; r < f.reps; ++r) {
      const auto toks = random_tokens(f.gen);
      const auto t0 = clock::now();
      for (int64_t i = 0; i < f.gen; ++i) m.forward_cached(pool, arena, cache, &toks[i], 1, i, logits.data(), false);
      if (r >= 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
    }
    report("tg" + std::to_string(f.gen), f.gen, secs);
  }
  if (f.json) {
    nlohmann::json j = {{"model", f.model},       {"threads", pool.threads()},          {"simd", kernels::simd_target_name()},
                        {"blas", blas_core_name()}, {"results", rows}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace longctx::cli
