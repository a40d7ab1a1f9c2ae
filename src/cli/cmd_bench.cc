// longctx bench train --preset small --batch 8 --ctx 256 --steps 20 [-t 2] [--json]
// Training throughput on random tokens (no data loading), with the model FLOP utilisation
// against the fp32 GEMM rate this binary reaches on the same thread count.
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"
#include "core/thread_pool.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"
#include "layers/block.h"
#include "model/config_overrides.h"
#include "model/model.h"
#include "train/optimizer.h"

namespace longctx::cli {
namespace {

struct BenchFlags {
  std::string preset = "small";
  std::string attn, colt5;  // model::ConfigOverrides' (empty: the preset's)
  std::string precision;
  int64_t batch = 8, ctx = 256, steps = 20, warmup = 2;
  int threads = 0;
  bool json = false;
};

// fp32 GEMM GFLOP/s of a training-shaped product [batch*ctx, model_dim] x [model_dim, 4*model_dim].
double gemm_gflops(ThreadPool& pool, int64_t M, int64_t N, int64_t K) {
  Buffer a(M * K), b(N * K), c(M * N);
  for (int64_t i = 0; i < M * K; ++i) a.data()[i] = 0.001f * (i % 97);
  for (int64_t i = 0; i < N * K; ++i) b.data()[i] = 0.001f * (i % 89);
  kernels::gemm(pool, false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
  const int reps = 10;
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; ++r)
    kernels::gemm(pool, false, true, M, N, K, 1.0f, a.data(), K, b.data(), K, 0.0f, c.data(), N);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return 2.0 * M * N * K * reps / s / 1e9;
}

int run_bench_train(const BenchFlags& f) {
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  auto cfg = model::preset(f.preset, 0);
  if (!cfg.ok()) return fail(cfg.status());
  if (cfg->pos != model::PosType::kLearned) cfg->ctx = std::max<int>(cfg->ctx, static_cast<int>(std::min<int64_t>(f.ctx, 1 << 20)));
  if (f.ctx < 1 || f.ctx > cfg->ctx) return fail("--ctx must be in [1, " + std::to_string(cfg->ctx) + "]");
  model::ConfigOverrides o;
  o.attn = f.attn;
  o.colt5 = f.colt5;
  if (Status st = model::apply_overrides(o, cfg->ctx, &*cfg); !st.ok()) return fail(st);
  if (f.batch < 1 || f.steps < 1) return fail("--batch and --steps must be >= 1");
  model::Model m(*cfg);
  if (Status ps = apply_precision(f.precision, m); !ps.ok()) return fail(ps.Wrap("bench train"));
  Rng rng(1);
  m.init(rng);
  train::AdamW adamw(m.layout());
  int64_t step = 0;
  Arena arena;
  std::vector<int32_t> in(f.batch * f.ctx), tg(f.batch * f.ctx);
  auto one_step = [&] {
    for (auto& t : in) t = static_cast<int32_t>(rng.below(cfg->vocab_size));
    for (auto& t : tg) t = static_cast<int32_t>(rng.below(cfg->vocab_size));
    m.zero_grads();
    m.forward_backward(pool, arena, in.data(), tg.data(), f.batch, f.ctx, 1.0f / (f.batch * f.ctx));
    adamw.step(pool, m, 1e-4f, ++step, train::AdamWOptions{});
  };
  for (int64_t i = 0; i < f.warmup; ++i) one_step();
  m.take_route_counts();
  auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < f.steps; ++i) one_step();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double tps = f.steps * f.batch * f.ctx / s;
  // Routed blocks (CoLT5): the fraction of rows each (layer, router) sent to a heavy branch.
  std::map<std::pair<int, std::string>, double> routed;
  {
    std::map<std::pair<int, std::string>, std::pair<int64_t, int64_t>> counts;
    for (const auto& c : m.take_route_counts()) {
      counts[{c.layer, c.count.router}].first += c.count.routed;
      counts[{c.layer, c.count.router}].second += c.count.considered;
    }
    for (const auto& [key, c] : counts) routed[key] = c.second > 0 ? double(c.first) / double(c.second) : 0.0;
  }
  auto fraction = [&](int layer, const char* router) {
    auto it = routed.find({layer, router});
    return it == routed.end() ? 1.0 : it->second;
  };
  // Model FLOPs per token: 6 per matrix parameter (forward + backward) including the output
  // projection, plus causal attention: 6 * ctx * heads * head_dim per layer (windows: below). A
  // routed layer's heavy matrices (the dense names) count at their router's fraction: the
  // feed-forward's at ffn's, attn_q and attn_output at attn_q's, attn_k and attn_v at attn_kv's.
  double matrix_params = 0;
  for (const auto& t : m.layout().tensors()) {
    if (t.shape.size() != 2 || t.name == "position_embd.weight") continue;
    auto has = [&](const char* part) { return t.name.find(part) != std::string::npos; };
    double frac = 1.0;
    if (has(".ffn_") && !has(".ffn_light_")) frac = fraction(t.layer, "ffn");
    if (has(".attn_q.") || has(".attn_output.")) frac = fraction(t.layer, "attn_q");
    if (has(".attn_k.") || has(".attn_v.")) frac = fraction(t.layer, "attn_kv");
    matrix_params += t.numel * frac;
  }
  double attn = 0;
  for (int li = 0; li < cfg->n_layers(); ++li) {
    const auto& l = cfg->layers[li];
    // A sliding window of W keys does the work of a causal pattern over 2W positions.
    const auto* w = std::get_if<attention::SlidingWindow>(&l.pattern);
    const double span = w ? std::min<double>(f.ctx, 2.0 * w->window) : f.ctx;
    const auto* light = m.layout().find("blk." + std::to_string(li) + ".attn_light_q.weight");
    if (!light && !routed.count({li, "attn_q"}) && !routed.count({li, "attn_kv"})) {
      attn += 6.0 * span * l.heads * l.head_dim;
      continue;
    }
    // Routed attention: the light heads over their window (2W), the heavy heads from the routed
    // queries over the routed keys.
    int64_t window = 128;
    for (const auto& b : l.blocks)
      if (b.kind == "routed_attention")
        if (auto kv = layers::parse_block_args(b.args, {"window", "light_heads", "route_q", "route_kv"}); kv.ok())
          for (const auto& [key, value] : *kv)
            if (key == "window") window = std::stoll(value);
    const int64_t light_heads = light ? light->shape[0] / l.head_dim : 0;
    attn += 6.0 * std::min<double>(f.ctx, 2.0 * window) * light_heads * l.head_dim +
            6.0 * f.ctx * fraction(li, "attn_q") * fraction(li, "attn_kv") * (l.heads - light_heads) * l.head_dim;
  }
  const double flops_per_token = 6.0 * matrix_params + attn;
  const double achieved = tps * flops_per_token / 1e9;
  const double peak = gemm_gflops(pool, f.batch * f.ctx, 4 * cfg->model_dim, cfg->model_dim);
  if (f.json) {
    nlohmann::json j = {{"impl", "longctx"}, {"preset", f.preset}, {"threads", pool.threads()},
                        {"precision", m.bf16() ? "bf16" : "fp32"},
                        {"batch", f.batch}, {"ctx", f.ctx}, {"steps", f.steps},
                        {"tokens_per_s", tps}, {"step_ms", 1e3 * s / f.steps},
                        {"model_gflops", achieved}, {"sgemm_gflops", peak}, {"mfu", achieved / peak},
                        {"simd", kernels::simd_target_name()}, {"blas", blas_core_name()}};
    if (!f.attn.empty()) j["attn"] = f.attn;
    if (!f.colt5.empty()) {
      j["colt5"] = f.colt5;
      nlohmann::json r = nlohmann::json::array();
      for (const auto& [key, frac] : routed)
        r.push_back({{"layer", key.first}, {"router", key.second}, {"fraction", frac}});
      j["routed"] = r;
    }
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("| test | threads | tokens/s | step ms | model GFLOP/s | sgemm GFLOP/s | MFU |\n");
    std::string variant = f.attn.empty() ? "" : " attn " + f.attn;
    if (!f.colt5.empty()) variant += " colt5 " + f.colt5;
    std::printf("| train %s b%lld c%lld %s%s | %d | %.0f | %.0f | %.1f | %.1f | %.0f%% |\n", f.preset.c_str(),
                (long long)f.batch, (long long)f.ctx, m.bf16() ? "bf16" : "fp32", variant.c_str(), pool.threads(), tps, 1e3 * s / f.steps, achieved, peak,
                100 * achieved / peak);
  }
  return 0;
}

struct GemmBenchFlags {
  std::vector<std::string> shapes = {"512x1536x384", "512x384x1536", "2048x2048x512", "2048x512x2048"};
  int threads = 0;
  double seconds = 0.3;
  bool json = false;
};

// GFLOP/s of one product, repeated for at least `seconds` after one untimed call.
template <class F>
double rate(double flops, double seconds, F&& f) {
  f();
  int64_t reps = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double s = 0;
  do {
    f();
    ++reps;
    s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (s < seconds);
  return flops * reps / s / 1e9;
}

// fp32 (OpenBLAS) against bf16 (AMX) products of the shapes a linear layer runs: forward
// y = x W^T (NT), backward dx = dy W (NN) and dW = dy^T x (TN), for M x N x K given as rows x out x in.
int run_bench_gemm(const GemmBenchFlags& f) {
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  const bool bf16 = kernels::gemm_bf16_supported();
  if (!f.json) std::printf("| rows x out x in | product | fp32 GFLOP/s | bf16 GFLOP/s | bf16 / fp32 |\n|---|---|---|---|---|\n");
  for (const std::string& spec : f.shapes) {
    long long r = 0, o = 0, i = 0;
    if (std::sscanf(spec.c_str(), "%lldx%lldx%lld", &r, &o, &i) != 3 || r < 1 || o < 1 || i < 1)
      return fail("bench gemm: shape '" + spec + "' is not ROWSxOUTxIN with positive sizes");
    Buffer x(r * i), w(o * i), y(r * o), dy(r * o), dx(r * i), dw(o * i);
    for (int64_t k = 0; k < r * i; ++k) x.data()[k] = 0.001f * (k % 97);
    for (int64_t k = 0; k < o * i; ++k) w.data()[k] = 0.001f * (k % 89);
    for (int64_t k = 0; k < r * o; ++k) dy.data()[k] = 0.001f * (k % 83);
    const double flops = 2.0 * r * o * i;
    struct Op {
      const char* name;
      std::function<void(bool)> run;
    };
    const Op ops[] = {
        {"forward x W^T", [&](bool b) {
           (b ? kernels::gemm_bf16 : kernels::gemm)(pool, false, true, r, o, i, 1.0f, x.data(), i, w.data(), i, 0.0f,
                                                    y.data(), o);
         }},
        {"dx = dy W", [&](bool b) {
           (b ? kernels::gemm_bf16 : kernels::gemm)(pool, false, false, r, i, o, 1.0f, dy.data(), o, w.data(), i, 0.0f,
                                                    dx.data(), i);
         }},
        {"dW = dy^T x", [&](bool b) {
           (b ? kernels::gemm_bf16 : kernels::gemm)(pool, true, false, o, i, r, 1.0f, dy.data(), o, x.data(), i, 1.0f,
                                                    dw.data(), i);
         }},
    };
    for (const Op& op : ops) {
      const double g32 = rate(flops, f.seconds, [&] { op.run(false); });
      const double g16 = bf16 ? rate(flops, f.seconds, [&] { op.run(true); }) : 0.0;
      if (f.json) {
        nlohmann::json j = {{"shape", spec}, {"product", op.name}, {"threads", pool.threads()},
                            {"fp32_gflops", g32}, {"bf16_gflops", g16}};
        std::printf("%s\n", j.dump().c_str());
      } else {
        std::printf("| %s | %s | %.1f | %.1f | %.2fx |\n", spec.c_str(), op.name, g32, g16, g16 / g32);
      }
    }
  }
  if (!bf16) std::fprintf(stderr, "bench gemm: this CPU has no AMX-BF16: bf16 columns are 0\n");
  return 0;
}

struct MemoryBenchFlags {
  int threads = 0;
  int64_t mib = 1024;  // past the last-level cache (260 MiB on the development VM)
  int reps = 10;
  bool json = false;
};

// Memory bandwidth in the manner of STREAM: triad a[i] = b[i] + s * c[i] over three arrays of
// `mib` MiB each (counted as 3 arrays moved, write-allocate not counted, as STREAM does) and a read
// of one array (what streaming weights through a decode does); each thread owns one contiguous
// part of every array (first-touched by it); the best of `reps` runs, as STREAM reports.
int run_bench_memory(const MemoryBenchFlags& f) {
  if (f.mib < 1 || f.mib > 65536) return fail("bench memory: --mib must be 1..65536");
  if (f.reps < 1) return fail("bench memory: -r must be at least 1");
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  const int64_t n = f.mib * (int64_t{1} << 20) / int64_t(sizeof(float));
  Buffer a(n), b(n), c(n);
  const int parts = pool.threads();
  auto range = [&](int64_t p) { return std::pair<int64_t, int64_t>(n * p / parts, n * (p + 1) / parts); };
  pool.parallel_for(parts, [&](int64_t p, int) {
    const auto [lo, hi] = range(p);
    for (int64_t i = lo; i < hi; ++i) a.data()[i] = 0.0f, b.data()[i] = 1.0f, c.data()[i] = 2.0f;
  });
  std::vector<float> sums(parts);
  auto best = [&](auto&& body) {
    double t_best = 1e30;
    for (int r = 0; r <= f.reps; ++r) {  // the first run is untimed
      const auto t0 = std::chrono::steady_clock::now();
      pool.parallel_for(parts, body);
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) t_best = std::min(t_best, t);
    }
    return t_best;
  };
  const float scalar = 3.0f;
  const double t_triad = best([&](int64_t p, int) {
    const auto [lo, hi] = range(p);
    float* __restrict pa = a.data();
    const float* __restrict pb = b.data();
    const float* __restrict pc = c.data();
    for (int64_t i = lo; i < hi; ++i) pa[i] = pb[i] + scalar * pc[i];
  });
  const double t_read = best([&](int64_t p, int) {
    const auto [lo, hi] = range(p);
    sums[p] = kernels::vec_sum(b.data() + lo, hi - lo);  // SIMD partial sums: the loads set the pace
  });
  const double bytes = double(n) * sizeof(float);
  const double triad = 3 * bytes / t_triad / 1e9, read = bytes / t_read / 1e9;
  if (f.json) {
    nlohmann::json j = {{"threads", pool.threads()}, {"array_mib", f.mib}, {"triad_gbps", triad}, {"read_gbps", read}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("| threads | array MiB | triad GB/s | read GB/s |\n|---|---|---|---|\n| %d | %lld | %.1f | %.1f |\n",
                pool.threads(), (long long)f.mib, triad, read);
  }
  return 0;
}

}  // namespace

void register_bench(CLI::App& app, Commands& cmds) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (see docs/BENCHMARKS.md)");
  // `bench -m MODEL` measures a model's inference speed; `bench train` / `bench attention` the rest.
  bench->require_subcommand(0, 1);
  auto mf = std::make_shared<BenchModelFlags>();
  bench->add_option("-m,--model", mf->model, "Model to measure (prefill and generation speed)");
  bench->add_option("-p,--n-prompt", mf->prompt, "Prompt tokens of the prefill test (0: skip)");
  bench->add_option("-n,--n-gen", mf->gen, "Tokens of the generation test (0: skip)");
  bench->add_option("-r,--repetitions", mf->reps, "Runs per test");
  bench->add_option("-t,--threads", mf->threads, "Threads (default: all cores)");
  bench->add_option("--random-model", mf->random_model,
                    "Random weights of a llama shape instead of -m: llama:layers=30,model_dim=576,heads=9,kv_heads=3,"
                    "ff_dim=1536,vocab=49152[,window=W][,ctx=N][,type=q8_0]");
  bench->add_option("-d,--depth", mf->depths, "Cache depths to measure at, comma-separated (default 0)");
  bench->add_option("--parallel", mf->parallel,
                    "Also generate with B sequences stepping together (one batched forward per step), "
                    "comma-separated B values: tg<N> xB");
  bench->add_option("--ctx", mf->ctx, "Context to build the model for (default: the model's; random: what the depths need)");
  bench->add_option("--ubatch", mf->ubatch, "Tokens per prefill pass when filling to a depth and in pp (default 512)");
  bench->add_flag("--json", mf->json, "One JSON object");
  bench->add_flag("--no-repack", mf->no_repack, "With --parallel: do not pack Q4_0/Q4_1/Q8_0 matrices for the AMX tiles first");
  bench->add_flag("--exact-prefill", mf->exact_prefill,
                  "Prompts through the fp32 product of dequantized weights (as perplexity), not the integer tiles");
  add_dequantize_flag(bench, mf->dequantize);
  add_lora_flags(bench, mf->lora);
  add_cache_type_flags(bench, mf->cache_k, mf->cache_v);
  bench->callback([bench, mf, &cmds] {
    if (!bench->get_subcommands().empty()) return;
    cmds.run = [mf] {
      if (mf->model.empty() && mf->random_model.empty())
        return fail("bench: give -m MODEL or --random-model SPEC, or one of the subcommands train, gemm, memory, attention");
      return run_bench_model(*mf);
    };
  });
  auto* tr = bench->add_subcommand("train", "Training throughput of a preset on random tokens");
  auto f = std::make_shared<BenchFlags>();
  tr->add_option("--preset", f->preset, "Model preset");
  tr->add_option("--batch", f->batch, "Sequences per step");
  tr->add_option("--ctx", f->ctx, "Sequence length");
  tr->add_option("--steps", f->steps, "Timed steps");
  tr->add_option("--warmup", f->warmup, "Untimed steps first");
  tr->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  tr->add_option("--attn", f->attn, "Attention pattern per layer, as train takes it (default: the preset's)");
  tr->add_option("--colt5", f->colt5, "CoLT5 routed blocks, as train takes them (default: none)");
  add_precision_flag(tr, f->precision, "auto");
  tr->add_flag("--json", f->json, "One JSON line");
  tr->callback([f, &cmds] { cmds.run = [f] { return run_bench_train(*f); }; });
  auto* gm = bench->add_subcommand("gemm", "fp32 against bf16 matrix products of linear-layer shapes");
  auto g = std::make_shared<GemmBenchFlags>();
  gm->add_option("--shapes", g->shapes, "ROWSxOUTxIN, comma-separated")->delimiter(',');
  gm->add_option("--seconds", g->seconds, "Least time per measurement");
  gm->add_option("-t,--threads", g->threads, "Threads (default: all cores)");
  gm->add_flag("--json", g->json, "One JSON line per measurement");
  gm->callback([g, &cmds] { cmds.run = [g] { return run_bench_gemm(*g); }; });
  auto* mem = bench->add_subcommand("memory", "Memory bandwidth: STREAM-style triad and a streaming read");
  auto mb = std::make_shared<MemoryBenchFlags>();
  mem->add_option("-t,--threads", mb->threads, "Threads (default: all cores)");
  mem->add_option("--mib", mb->mib, "MiB per array (three arrays)");
  mem->add_option("-r,--repetitions", mb->reps, "Timed runs (the best counts)");
  mem->add_flag("--json", mb->json, "One JSON line");
  mem->callback([mb, &cmds] { cmds.run = [mb] { return run_bench_memory(*mb); }; });
  register_bench_attention(*bench, cmds);
  register_bench_routing(*bench, cmds);
}

}  // namespace longctx::cli
