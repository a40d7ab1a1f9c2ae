// longctx bench (-m MODEL | --random-model SPEC) [-p 512] [-n 128] [-r 5] [-t 2] [--depth 0,4096]
//               [--ctx N] [--ubatch 512] [--json]
// Inference speed in the manner of llama.cpp's llama-bench: pp<P> is the prefill of P tokens in
// one pass, tg<N> the generation of N tokens one at a time; both on random token ids, reported as
// tokens/s mean ± standard deviation over -r runs. At depth D (llama-bench's -d) the cache
// first holds D random tokens (prefilled in chunks of --ubatch), and each run starts there:
// "pp512 @ d4096". Each depth also reports the KV cache's bytes and the peak resident memory
// of the process while it ran (weights, cache and scratch). --random-model builds a model of
// any llama shape with random weights (model/random_model.h) instead of loading one.
// --parallel 2,8 adds "tg<N> x<B>" (llama-batched-bench's generation test): B sequences, each
// forked from the depth's cache, generate N tokens together through Model::forward_batch (one
// pass per step, every weight matrix read once for all B); tokens/s counts all B * N tokens.
// With --parallel the Q4_0/Q4_1/Q8_0 matrices are packed for the AMX tiles first, as `serve` does
// (Model::pack_for_batches; --no-repack: not).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"
#include "core/rng.h"
#include "core/memory_stats.h"
#include "core/thread_pool.h"
#include "kernels/vec.h"
#include "model/pretrained.h"
#include "model/random_model.h"

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

Expected<std::vector<int64_t>> parse_depths(const std::string& s) {
  std::vector<int64_t> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t comma = s.find(',', pos);
    if (comma == std::string::npos) comma = s.size();
    const std::string item = s.substr(pos, comma - pos);
    if (item.empty() || item.size() > 9 || item.find_first_not_of("0123456789") != std::string::npos)
      return Status::Error("--depth '" + s + "': '" + item + "' is not a token count");
    out.push_back(std::stoll(item));
    pos = comma + 1;
  }
  return out;
}

int run_bench_model(const BenchModelFlags& f) {
  if (f.prompt < 0 || f.gen < 0 || f.reps < 1) return fail("-p and -n must be >= 0 and -r >= 1");
  if (f.ubatch < 1) return fail("--ubatch must be >= 1");
  if (f.ctx < 0) return fail("--ctx must be >= 0");
  if (f.model.empty() == f.random_model.empty()) return fail("bench: give one of -m MODEL and --random-model SPEC");
  auto kt = kvcache::parse_cache_type(f.cache_k), vt = kvcache::parse_cache_type(f.cache_v);
  if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
  if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
  auto depths = parse_depths(f.depths);
  if (!depths.ok()) return fail(depths.status());
  std::vector<int64_t> parallel;
  if (!f.parallel.empty()) {
    auto p = parse_depths(f.parallel);
    if (!p.ok()) return fail("--parallel '" + f.parallel + "': give sequence counts like 2,4,8");
    parallel = *p;
    for (int64_t b : parallel)
      if (b < 1 || b > 256) return fail("--parallel: sequence counts must be 1..256");
  }
  int64_t max_par = 1;
  for (int64_t b : parallel) max_par = std::max(max_par, b);
  int64_t max_depth = 0;
  for (int64_t d : *depths) max_depth = std::max(max_depth, d);
  const int64_t need = max_depth + std::max(f.prompt, f.gen);
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  std::unique_ptr<model::Model> owned;
  const std::string name = f.model.empty() ? f.random_model : f.model;
  if (!f.random_model.empty()) {
    auto spec = model::parse_random_model(f.random_model);
    if (!spec.ok()) return fail(spec.status().Wrap("--random-model"));
    if (f.ctx > 0) spec->config.ctx = static_cast<int>(f.ctx);
    else spec->config.ctx = std::max<int64_t>(spec->config.ctx, need);
    auto m = model::make_random_model(*spec);
    if (!m.ok()) return fail(m.status());
    owned = std::move(*m);
  } else {
    model::LoadOptions lo;
    lo.keep_quantized = !f.dequantize;
    lo.ctx = static_cast<int>(f.ctx);
    auto loaded = model::load_model(f.model, lo);
    if (!loaded.ok()) return fail(loaded.status());
    if (Status s = apply_lora_flags(f.lora, *loaded->model); !s.ok()) return fail(s);
    owned = std::move(loaded->model);
  }
  model::Model& m = *owned;
  // Prompts as generate, chat and serve run them (the integer tiles where the CPU has AMX), or
  // with --exact-prefill as perplexity does (the fp32 product of dequantized weights).
  m.set_integer_prefill(!f.exact_prefill);
  // Batched generation as the server runs it: Q4_0/Q4_1/Q8_0 matrices packed for the AMX tiles once.
  if (!parallel.empty() && !f.no_repack) m.pack_for_batches(pool);
  const int64_t ctx = m.config().ctx, V = m.config().vocab_size;
  if (need > ctx)
    return fail("depth " + std::to_string(max_depth) + " + " + std::to_string(std::max(f.prompt, f.gen)) +
                " tokens do not fit the context of " + std::to_string(ctx) + " (raise it with --ctx)");
  // The cache filled to a depth; each run goes on from a fork of it (its pages shared, the
  // pages a run writes copied), so every run sees the same depth. The deepest one's plan, those
  // extra pages included, is checked against the memory there is before anything runs.
  const int64_t run_pages =
      max_par * ((std::max(f.prompt, f.gen) + kvcache::kDefaultPageRows - 1) / kvcache::kDefaultPageRows + 1);
  auto plan = model::plan_memory(m.config(), m.weight_bytes(), need, f.ubatch, *kt, *vt, m.kv_slot_count() * run_pages);
  if (!plan.ok()) return fail(plan.status());
  if (auto st = model::check_memory(*plan); !st.ok()) return fail(st);
  Rng rng(1);
  Arena arena;
  std::vector<float> logits(V);
  auto random_tokens = [&](int64_t n) {
    std::vector<int32_t> t(n);
    for (auto& x : t) x = static_cast<int32_t>(rng.below(V));
    return t;
  };
  using clock = std::chrono::steady_clock;
  nlohmann::json rows = nlohmann::json::array();
  if (!f.json) {
    std::printf("| model | threads | test | t/s | KV cache MiB | peak RSS MiB |\n|---|---|---|---|---|---|\n");
    std::fflush(stdout);
  }
  for (int64_t depth : *depths) {
    reset_peak_rss();
    const int64_t cap = depth + std::max(f.prompt, f.gen);
    auto made = m.make_cache(cap, {*kt, *vt, f.ubatch, 1, kvcache::kDefaultPageRows, m.kv_slot_count() * run_pages});
    if (!made.ok()) return fail(made.status());
    kvcache::KvCache cache = std::move(*made);
    int64_t kv_bytes = 0;
    const std::string at = depth > 0 ? " @ d" + std::to_string(depth) : "";
    if (depth > 0) {  // fill the cache to the depth, in chunks of --ubatch
      const auto toks = random_tokens(depth);
      const auto t0 = clock::now();
      for (int64_t i = 0; i < depth; i += f.ubatch) {
        const int64_t n = std::min(f.ubatch, depth - i);
        if (auto st = m.forward_cached(pool, arena, cache, toks.data() + i, n, i, logits.data(), false); !st.ok())
          return fail(st);
        if (!f.json && isatty(STDERR_FILENO) == 1) {
          const double s = std::chrono::duration<double>(clock::now() - t0).count();
          std::fprintf(stderr, "\rfilling the cache to depth %lld: %lld tokens, %.0f tokens/s   ", (long long)depth,
                       (long long)(i + n), (i + n) / s);
        }
      }
      if (!f.json && isatty(STDERR_FILENO) == 1) std::fprintf(stderr, "\r%*s\r", 70, "");
    }
    auto report = [&](const std::string& test, int64_t n_tokens, const std::vector<double>& secs) {
      std::vector<double> tps;
      for (double s : secs) tps.push_back(n_tokens / s);
      const Stats s = stats_of(tps);
      const double peak = double(peak_rss_bytes());
      if (f.json) {
        rows.push_back({{"test", test + at}, {"depth", depth}, {"tokens_per_s", s.mean}, {"sd", s.sd},
                        {"reps", f.reps}, {"kv_bytes", kv_bytes}, {"peak_rss_bytes", peak}});
      } else {
        std::printf("| %s | %d | %s%s | %.2f ± %.2f | %.1f | %.1f |\n", name.c_str(), pool.threads(), test.c_str(),
                    at.c_str(), s.mean, s.sd, kv_bytes / 1048576.0, peak / 1048576.0);
        std::fflush(stdout);
      }
    };
    if (f.prompt > 0) {
      std::vector<double> secs;
      for (int r = -1; r < f.reps; ++r) {  // one warm-up run
        const auto toks = random_tokens(f.prompt);
        kvcache::KvCache run = cache.fork(depth);
        const auto t0 = clock::now();
        for (int64_t i = 0; i < f.prompt; i += f.ubatch) {
          const int64_t n = std::min(f.ubatch, f.prompt - i);
          if (auto st = m.forward_cached(pool, arena, run, toks.data() + i, n, depth + i, logits.data(), false); !st.ok())
            return fail(st);
        }
        if (r >= 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
        kv_bytes = run.blocks_held() * run.pool().block_bytes();
      }
      report("pp" + std::to_string(f.prompt), f.prompt, secs);
    }
    if (f.gen > 0) {
      std::vector<double> secs;
      for (int r = -1; r < f.reps; ++r) {
        const auto toks = random_tokens(f.gen);
        kvcache::KvCache run = cache.fork(depth);
        const auto t0 = clock::now();
        for (int64_t i = 0; i < f.gen; ++i)
          if (auto st = m.forward_cached(pool, arena, run, &toks[i], 1, depth + i, logits.data(), false); !st.ok())
            return fail(st);
        if (r >= 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
        kv_bytes = run.blocks_held() * run.pool().block_bytes();
      }
      report("tg" + std::to_string(f.gen), f.gen, secs);
    }
    for (int64_t B : parallel) {
      if (f.gen == 0) break;
      std::vector<double> secs;
      std::vector<float> blogits(static_cast<size_t>(B * V));
      for (int r = -1; r < f.reps; ++r) {
        std::vector<kvcache::KvCache> runs;
        std::vector<std::vector<int32_t>> toks;
        for (int64_t b = 0; b < B; ++b) {
          runs.push_back(cache.fork(depth));
          toks.push_back(random_tokens(f.gen));
        }
        std::vector<model::Model::SeqStep> steps(static_cast<size_t>(B));
        const auto t0 = clock::now();
        for (int64_t i = 0; i < f.gen; ++i) {
          for (int64_t b = 0; b < B; ++b) steps[b] = {&runs[b], &toks[b][i], 1, depth + i};
          if (auto st = m.forward_batch(pool, arena, steps, blogits.data()); !st.ok()) return fail(st);
        }
        if (r >= 0) secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
        // The pool's use: the depth's pages once, plus what each sequence added.
        int64_t blocks = cache.blocks_held();
        for (const auto& run : runs) blocks += run.blocks_held() - cache.blocks_held();
        kv_bytes = blocks * cache.pool().block_bytes();
      }
      report("tg" + std::to_string(f.gen) + " x" + std::to_string(B), B * f.gen, secs);
    }
  }
  if (f.json) {
    nlohmann::json j = {{"model", name},       {"threads", pool.threads()},          {"simd", kernels::simd_target_name()},
                        {"blas", blas_core_name()}, {"weight_bytes", m.weight_bytes()}, {"results", rows}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace longctx::cli
