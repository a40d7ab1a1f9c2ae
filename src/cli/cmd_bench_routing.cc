// `longctx bench routing`: how often a CoLT5 model's routing in the full forward (training and
// prefill) agrees with its routing when the same tokens are decoded one at a time through the KV
// cache, per layer and router. The causal rule (layers/router.h) makes them the same function of
// the same hidden states, so they can differ only where the two paths round a score on the other
// side of the threshold.
#include <algorithm>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "core/thread_pool.h"
#include "model/pretrained.h"
#include "train/data.h"

namespace longctx::cli {
namespace {

struct RoutingBenchFlags {
  std::string model, data;
  int64_t tokens = 1024;
  int threads = 0;
  bool json = false;
};

using Key = std::pair<int, std::string>;  // (layer, router)

std::map<Key, std::set<int64_t>> routed_positions(model::Model& m) {
  std::map<Key, std::set<int64_t>> out;
  for (auto& r : m.take_route_counts())
    out[{r.layer, r.count.router}].insert(r.count.positions.begin(), r.count.positions.end());
  return out;
}

int run_bench_routing(const RoutingBenchFlags& f) {
  if (f.tokens < 1) return fail("--tokens must be >= 1");
  ThreadPool::set_default_threads(f.threads);
  ThreadPool& pool = ThreadPool::global();
  auto loaded = model::load_model(f.model, model::LoadOptions{});
  if (!loaded.ok()) return fail(loaded.status());
  model::Model& m = *loaded->model;
  auto text = train::read_corpus(f.data);
  if (!text.ok()) return fail(text.status());
  const train::TokenStream stream = train::tokenize_stream(loaded->tokenizer, *text);
  const int64_t n = std::min<int64_t>({f.tokens, static_cast<int64_t>(stream.tokens.size()), m.config().ctx});
  if (n < 1) return fail("'" + f.data + "' has no tokens");
  const int32_t* tokens = stream.tokens.data();
  m.set_route_trace(true);
  m.take_route_counts();
  Arena arena;
  std::vector<float> logits(static_cast<size_t>(n) * m.config().vocab_size);
  m.forward_logits(pool, arena, tokens, 1, n, logits.data());
  const auto full = routed_positions(m);
  if (full.empty()) return fail("model '" + f.model + "' has no routed blocks (train one with --colt5)");
  auto cache = m.make_cache(n);
  if (!cache.ok()) return fail(cache.status());
  std::vector<float> step(m.config().vocab_size);
  for (int64_t t = 0; t < n; ++t) {
    Status st = m.forward_cached(pool, arena, *cache, tokens + t, 1, t, step.data(), false);
    if (!st.ok()) return fail(st);
  }
  const auto decoded = routed_positions(m);
  nlohmann::json rows = nlohmann::json::array();
  int64_t agree_all = 0, total = 0;
  if (!f.json) std::printf("| layer | router | routed (full) | routed (decode) | agreement |\n|---|---|---|---|---|\n");
  for (const auto& [key, a] : full) {
    const auto it = decoded.find(key);
    const std::set<int64_t> empty;
    const std::set<int64_t>& b = it == decoded.end() ? empty : it->second;
    std::vector<int64_t> diff;
    std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
    const int64_t agree = n - static_cast<int64_t>(diff.size());
    agree_all += agree;
    total += n;
    if (f.json)
      rows.push_back({{"layer", key.first}, {"router", key.second}, {"routed_full", a.size()},
                      {"routed_decode", b.size()}, {"agree", agree}, {"tokens", n}});
    else
      std::printf("| %d | %s | %.2f%% | %.2f%% | %.3f%% (%lld of %lld) |\n", key.first, key.second.c_str(),
                  100.0 * a.size() / n, 100.0 * b.size() / n, 100.0 * agree / n, (long long)agree, (long long)n);
  }
  if (f.json) {
    std::printf("%s\n", nlohmann::json({{"model", f.model}, {"tokens", n}, {"layers", rows},
                                        {"agreement", double(agree_all) / double(total)}})
                            .dump()
                            .c_str());
  } else {
    std::printf("all: %.3f%% of %lld decisions agree\n", 100.0 * agree_all / total, (long long)total);
  }
  return 0;
}

}  // namespace

void register_bench_routing(CLI::App& bench, Commands& cmds) {
  auto* c = bench.add_subcommand("routing",
                                   "CoLT5 routing: the full forward's decisions against decoding token by token");
  auto f = std::make_shared<RoutingBenchFlags>();
  c->add_option("-m,--model", f->model, "A checkpoint with routed blocks (train --colt5)")->required();
  c->add_option("--data", f->data, "Text whose first tokens are routed")->required();
  c->add_option("--tokens", f->tokens, "Tokens (at most the model's context; default 1024)");
  c->add_option("-t,--threads", f->threads, "Threads (default: all cores)");
  c->add_flag("--json", f->json, "One JSON object");
  c->callback([f, &cmds] { cmds.run = [f] { return run_bench_routing(*f); }; });
}

}  // namespace longctx::cli
