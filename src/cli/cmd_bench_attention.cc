// longctx bench attention [--seq-len 1024,2048,...] [-t N] [--heads 8] [--head-dim 64]
//                         [--impl reference,tiled-causal,window-512,bigbird] [--passes fwd,fwd+bwd]
//                         [--ref-max-len 4096] [--repeat N] [--tiles ROWS,COLS] [--precision fp32|bf16]
//                         [--json]
// Time and peak memory of attention alone (batch 1, MHA, fp32 inputs) against sequence length,
// for the reference driver and the tiled driver under three patterns. --precision bf16 runs the
// tiled driver's products on the AMX tiles (bf16 operands, fp32 sums: the training passes'
// TileSizes::bf16), its rows named with a -bf16 suffix; refused on a CPU without AMX-BF16.
// Peak memory is the growth of the resident set during the call (q, k, v, out and the
// gradients are allocated before), so it is the driver's own working memory. GFLOP/s counts useful work: 4 * head_dim flops per
// visible (query, key) pair and head forward (Q K^T and P V), 14 for forward + backward, the
// convention bench/torch_attention.py uses. bench/attention_bench.sh runs both side by side.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include "attention/attention.h"
#include "attention/reference.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "core/blas_setup.h"
#include "core/memory_stats.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/gemm_bf16.h"
#include "kernels/matmul.h"
#include "kernels/vec.h"

namespace longctx::cli {
namespace {

struct AttnBenchFlags {
  std::string seq_lens = "1024,2048,4096,8192,16384,32768,65536";
  std::string impls = "reference,tiled-causal,window-512,bigbird";
  std::string passes = "fwd,fwd+bwd";
  std::string tiles;
  std::string precision = "fp32";
  int threads = 0, heads = 8, head_dim = 64, repeat = 0;
  int64_t ref_max_len = 4096;
  bool json = false;
};

Expected<std::vector<std::string>> split_list(const std::string& s, const char* what) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) {
    if (item.empty()) return Status::Error(std::string("empty item in ") + what + " '" + s + "'");
    out.push_back(item);
  }
  if (out.empty()) return Status::Error(std::string(what) + " is empty");
  return out;
}

Expected<int64_t> parse_positive(const std::string& s, const char* what) {
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end || v < 1 || v > (int64_t(1) << 22))
    return Status::Error(std::string(what) + " '" + s + "' is not an integer in [1, 4194304]");
  return int64_t(v);
}

Expected<attention::Pattern> pattern_of(const std::string& impl) {
  if (impl == "reference" || impl == "tiled-causal") return attention::Pattern(attention::Causal{});
  if (impl == "window-512") return attention::Pattern(attention::SlidingWindow{512});
  if (impl == "bigbird") return attention::Pattern(attention::BigBird{64, 3, 2, 3, 0, true});
  return Status::Error("unknown --impl '" + impl + "' (expected reference, tiled-causal, window-512 or bigbird)");
}

// Visible (query, key) pairs of the pattern over n positions.
double visible_pairs(const attention::MaskView& mask, int64_t n) {
  double pairs = 0;
  std::vector<attention::KeySpan> spans;
  for (int64_t q = 0; q < n; ++q) {
    spans.clear();
    mask.row_spans(q, 0, n, &spans);
    for (const auto& s : spans) pairs += double(s.hi - s.lo);
  }
  return pairs;
}

double sgemm_gflops(ThreadPool& pool) {
  const int64_t n = 2048;
  Buffer a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; ++i) a.data()[i] = 0.001f * (i % 97), b.data()[i] = 0.001f * (i % 89);
  double best = 1e30;
  for (int r = 0; r < 4; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    kernels::gemm(pool, false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best / 1e9;
}

struct Measure {
  double seconds = 1e30;
  int64_t peak_bytes = 0;
};

int run_bench_attention(const AttnBenchFlags& f) {
  auto lens_s = split_list(f.seq_lens, "--seq-len");
  if (!lens_s.ok()) return fail(lens_s.status());
  std::vector<int64_t> lens;
  for (const auto& s : *lens_s) {
    auto v = parse_positive(s, "--seq-len");
    if (!v.ok()) return fail(v.status());
    lens.push_back(*v);
  }
  auto impls = split_list(f.impls, "--impl");
  if (!impls.ok()) return fail(impls.status());
  for (const auto& i : *impls)
    if (auto p = pattern_of(i); !p.ok()) return fail(p.status());
  auto passes = split_list(f.passes, "--passes");
  if (!passes.ok()) return fail(passes.status());
  for (const auto& p : *passes)
    if (p != "fwd" && p != "fwd+bwd") return fail("unknown pass '" + p + "' (expected fwd or fwd+bwd)");
  if (f.heads < 1 || f.heads > 256 || f.head_dim < 1 || f.head_dim > 1024)
    return fail("--heads must be in [1, 256] and --head-dim in [1, 1024]");
  attention::TileSizes tiles;
  tiles.fp32_kernels = true;  // the training passes' configuration
  if (f.precision == "bf16") {
    if (!kernels::gemm_bf16_supported()) return fail(bf16_unavailable());
    tiles.bf16 = true;
  } else if (f.precision != "fp32") {
    return fail("--precision must be fp32 or bf16 (got '" + f.precision + "')");
  }
  const std::string suffix = tiles.bf16 ? "-bf16" : "";
  if (!f.tiles.empty()) {
    auto t = split_list(f.tiles, "--tiles");
    if (!t.ok() || t->size() != 2) return fail("--tiles takes ROWS,COLS");
    auto r = parse_positive((*t)[0], "--tiles rows"), c = parse_positive((*t)[1], "--tiles cols");
    if (!r.ok()) return fail(r.status());
    if (!c.ok()) return fail(c.status());
    tiles.query_rows = *r;
    tiles.key_cols = *c;
  }
  if (current_rss_bytes() < 0 || !reset_peak_rss())
    std::fprintf(stderr, "longctx: warning: /proc/self/clear_refs not writable; peak memory covers the whole run\n");

  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  const double peak_gflops = sgemm_gflops(pool);
  const int H = f.heads, hd = f.head_dim;
  FILE* table = f.json ? stderr : stdout;
  const bool progress = isatty(2);  // a live line on a terminal; rows alone in logs
  std::fprintf(table, "sgemm %.0f GFLOP/s on %d threads (%s, %s)\n", peak_gflops, pool.threads(),
               kernels::simd_target_name(), blas_core_name());
  std::fprintf(table, "| impl | pass | seq_len | seconds | peak MiB | GFLOP/s | of sgemm |\n|---|---|---|---|---|---|---|\n");
  nlohmann::json results = nlohmann::json::array();

  for (int64_t n : lens) {
    const int64_t row = int64_t(H) * hd;
    // Inputs and outputs exist before any measurement: the peak is the driver's working memory.
    std::vector<float> q(n * row), k(n * row), v(n * row), out(n * row), dout(n * row), dq(n * row), dk(n * row),
        dv(n * row), lse(n * H);
    Rng rng(n);
    for (auto* buf : {&q, &k, &v, &dout})
      for (auto& x : *buf) x = static_cast<float>(rng.normal());
    attention::AttentionDims d;
    d.seq_len = d.kv_len = n;
    d.heads = d.kv_heads = H;
    d.head_dim = hd;
    d.q_stride = d.kv_stride = row;
    d.kv_batch_stride = n * row;
    for (const auto& impl : *impls) {
      const attention::Pattern pat = *pattern_of(impl);
      const bool ref = impl == "reference";
      const double pairs = visible_pairs(attention::MaskView(pat, n), n);
      for (const auto& pass : *passes) {
        const std::string name = ref ? impl : impl + suffix;
        nlohmann::json rec = {{"impl", name}, {"pass", pass}, {"seq_len", n}};
        if (ref && n > f.ref_max_len) {
          rec["skipped"] = "reference materialises seq_len^2 doubles per thread; seq_len > --ref-max-len " +
                           std::to_string(f.ref_max_len);
          results.push_back(rec);
          continue;
        }
        const bool bwd = pass == "fwd+bwd";
        const int reps = f.repeat > 0 ? f.repeat : (n <= 4096 ? 3 : 1);
        if (progress) {
          std::fprintf(stderr, "\r\033[K[bench attention] %s %s seq_len %lld ...", name.c_str(), pass.c_str(),
                       (long long)n);
          std::fflush(stderr);
        }
        Measure m;
        for (int r = 0; r < reps; ++r) {
          std::fill(dk.begin(), dk.end(), 0.0f);
          std::fill(dv.begin(), dv.end(), 0.0f);
          reset_peak_rss();
          const int64_t base = current_rss_bytes();
          const auto t0 = std::chrono::steady_clock::now();
          const attention::MaskView mask(pat, n);
          const attention::AttentionSpec spec{&mask, nullptr};
          if (ref) {
            attention::reference_forward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data());
            if (bwd)
              attention::reference_backward(pool, d, spec, q.data(), k.data(), v.data(), dout.data(), dq.data(),
                                            dk.data(), dv.data());
          } else {
            attention::tiled_forward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(), tiles);
            if (bwd)
              attention::tiled_backward(pool, d, spec, q.data(), k.data(), v.data(), out.data(), lse.data(),
                                        dout.data(), dq.data(), dk.data(), dv.data(), tiles);
          }
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          m.seconds = std::min(m.seconds, s);
          m.peak_bytes = std::max(m.peak_bytes, peak_rss_bytes() - base);
        }
        const double flops = (bwd ? 14.0 : 4.0) * pairs * hd * H;
        const double gf = flops / m.seconds / 1e9;
        rec["seconds"] = m.seconds;
        rec["peak_bytes"] = m.peak_bytes;
        rec["gflops"] = gf;
        rec["visible_pairs"] = pairs;
        results.push_back(rec);
        if (progress) std::fprintf(stderr, "\r\033[K");
        std::fprintf(table, "| %s | %s | %lld | %.4f | %.1f | %.1f | %.0f%% |\n", name.c_str(), pass.c_str(),
                     (long long)n, m.seconds, m.peak_bytes / 1048576.0, gf, 100 * gf / peak_gflops);
        std::fflush(table);
      }
    }
  }
  if (f.json) {
    nlohmann::json j = {{"tool", "longctx"},       {"threads", pool.threads()}, {"heads", H},
                        {"head_dim", hd},          {"sgemm_gflops", peak_gflops}, {"simd", kernels::simd_target_name()},
                        {"blas", blas_core_name()}, {"results", results}};
    std::printf("%s\n", j.dump(1).c_str());
  }
  return 0;
}

}  // namespace

void register_bench_attention(CLI::App& bench, Commands& cmds) {
  auto* c = bench.add_subcommand("attention", "Attention time and peak memory against sequence length");
  auto f = std::make_shared<AttnBenchFlags>();
  c->add_option("--seq-len", f->seq_lens, "Comma-separated sequence lengths");
  c->add_option("--impl", f->impls, "reference, tiled-causal, window-512, bigbird (comma-separated)");
  c->add_option("--passes", f->passes, "fwd, fwd+bwd (comma-separated)");
  c->add_option("--heads", f->heads, "Query (= key/value) heads");
  c->add_option("--head-dim", f->head_dim, "Head dimension");
  c->add_option("--ref-max-len", f->ref_max_len, "Longest sequence the reference driver is run at");
  c->add_option("--repeat", f->repeat, "Runs per point, best time kept (default: 3 up to 4096, then 1)");
  c->add_option("--tiles", f->tiles, "Tiled driver tile sizes ROWS,COLS (default: built-in)");
  c->add_option("--precision", f->precision, "Tiled driver's products: fp32 or bf16 (AMX-BF16 tiles)")
      ->capture_default_str();
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->add_flag("--json", f->json, "Write the results as JSON to stdout (the table goes to stderr)");
  c->callback([f, &cmds] { cmds.run = [f] { return run_bench_attention(*f); }; });
}

}  // namespace longctx::cli
