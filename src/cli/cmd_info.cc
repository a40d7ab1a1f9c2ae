// longctx info MODEL [--ctx N] [--tensors] [--json]
// What a model (GGUF file or Hugging Face safetensors directory) holds: metadata, the model config longctx reads from it, tensor types and
// sizes, and the memory plan of running it (model::plan_memory: weights as inference reads them,
// KV cache per token and for the whole context, the scratch of a 512-token prefill pass, the RoPE
// tables).
#include <cstdio>
#include <map>
#include <memory>

#include <nlohmann/json.hpp>

#include "attention/pattern.h"
#include "cli/commands.h"
#include "cli/common.h"
#include "io/gguf.h"
#include "kernels/qmatmul.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct InfoFlags {
  std::string model, cache_k = "f32", cache_v = "f32";
  int ctx = 0;
  bool tensors = false, json = false;
};

double mib(double bytes) { return bytes / 1048576.0; }

int run_info(const InfoFlags& f) {
  if (f.ctx < 0) return fail("--ctx must be >= 0");
  auto kt = kvcache::parse_cache_type(f.cache_k), vt = kvcache::parse_cache_type(f.cache_v);
  if (!kt.ok()) return fail(kt.status().Wrap("--cache-type-k"));
  if (!vt.ok()) return fail(vt.status().Wrap("--cache-type-v"));
  auto wrap = [&](const Status& st) { return fail(st.Wrap("model '" + f.model + "'")); };
  // Either a GGUF file (its metadata listed) or a Hugging Face directory (config.json + safetensors).
  std::shared_ptr<const io::GgufFile> file;
  model::TensorStore store;
  model::WeightMap map;
  model::ModelConfig cfg;
  std::string arch, format;
  uint64_t file_bytes = 0;
  if (model::is_hf_model_path(f.model)) {
    auto hf = model::read_hf_model(f.model);
    if (!hf.ok()) return wrap(hf.status());
    arch = hf->model_type;
    cfg = hf->config;
    map = hf->weights;
    store = model::TensorStore::from_safetensors(hf->tensors);
    format = "safetensors, " + std::to_string(hf->tensors->files().size()) + " file(s)";
  } else {
    auto opened = io::GgufFile::open(f.model);
    if (!opened.ok()) return fail(opened.status());
    file = std::make_shared<const io::GgufFile>(std::move(*opened));
    auto a = file->get_string("general.architecture");
    if (!a.ok()) return wrap(a.status());
    arch = *a;
    auto c = model::config_of(*file);
    if (!c.ok()) return wrap(c.status());
    cfg = *c;
    map = model::weights_of(arch, cfg);
    store = model::TensorStore::from_gguf(file);
    format = "GGUF v" + std::to_string(file->version());
    file_bytes = file->file_size();
  }
  if (f.ctx > 0) {
    if (auto st = model::check_context_growth(cfg, f.ctx); !st.ok()) return wrap(st);
    cfg.ctx = f.ctx;
  }
  const model::ModelConfig& c = cfg;

  // Tensors by type. Memory plan: weights as inference holds them (Model::planned_weight_bytes:
  // matrices read in place where their type and layout allow, the rest fp32), K and V per layer
  // per token, and the activations of a 512-token prefill plus the logits.
  std::map<std::string, std::pair<int64_t, uint64_t>> by_type;
  uint64_t stored_weights = 0, n_elements = 0;
  for (const auto& t : store.tensors()) {
    auto& e = by_type[t.type_name];
    ++e.first;
    e.second += t.n_bytes;
    stored_weights += t.n_bytes;
    uint64_t n = 1;
    for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
    n_elements += n;
  }
  if (!file_bytes) file_bytes = stored_weights;
  const auto planned = model::plan_memory(c, model::Model::planned_weight_bytes(c, store, map, true), c.ctx, 512, *kt, *vt);
  if (!planned.ok()) return wrap(planned.status());
  const model::MemoryPlan& plan = *planned;
  const double weights = double(plan.weights), kv_per_token = double(plan.kv_per_token), kv = double(plan.kv),
               scratch = double(plan.scratch), positions = double(plan.positions), total = double(plan.total());
  std::string patterns;
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const std::string p = attention::format_pattern(c.layers[i].pattern);
    if (i == 0 || p != attention::format_pattern(c.layers[i - 1].pattern)) patterns += (i ? "," : "") + p;
  }
  std::string blocks;  // each run of layers with one block list, like the patterns
  for (size_t i = 0; i < c.layers.size(); ++i) {
    const std::string b = layers::format_blocks(c.layers[i].blocks);
    if (i == 0 || b != layers::format_blocks(c.layers[i - 1].blocks)) blocks += (i ? "," : "") + b;
  }
  const auto name = file ? file->get_string("general.name") : Expected<std::string>(Status::Error("none"));
  const auto chat = file ? file->get_string("tokenizer.chat_template") : Expected<std::string>(Status::Error("none"));

  if (f.json) {
    nlohmann::json j = {{"file", f.model},
                        {"file_bytes", file_bytes},
                        {"format", format},
                        {"architecture", arch},
                        {"name", name.ok() ? *name : ""},
                        {"layers", c.n_layers()},
                        {"model_dim", c.model_dim},
                        {"heads", c.layers[0].heads},
                        {"kv_heads", c.layers[0].kv_heads},
                        {"head_dim", c.layers[0].head_dim},
                        {"ff_dim", c.layers[0].ff_dim},
                        {"vocab_size", c.vocab_size},
                        {"ctx", c.ctx},
                        {"position", model::pos_name(c.pos)},
                        {"attention", patterns},
                        {"blocks", blocks},
                        {"parameters", n_elements},
                        {"memory", {{"weights_bytes", weights}, {"kv_bytes_per_token", kv_per_token},
                                    {"kv_bytes", kv}, {"scratch_bytes", scratch},
                                    {"positions_bytes", positions}, {"total_bytes", total}}}};
    nlohmann::json types = nlohmann::json::object();
    for (const auto& [t, e] : by_type) types[t] = {{"tensors", e.first}, {"bytes", e.second}};
    j["tensor_types"] = types;
    std::printf("%s\n", j.dump(1).c_str());
    return 0;
  }
  std::printf("file: %s (%.1f MiB, %s, %zu tensors", f.model.c_str(), mib(double(file_bytes)), format.c_str(),
              store.tensors().size());
  if (file) std::printf(", %zu metadata keys", file->metadata().size());
  std::printf(")\n");
  std::printf("model: %s%s%s | %d layers, dim %d, heads %d/%d, head_dim %d, ff %d, vocab %d, ctx %d | %s",
              arch.c_str(), name.ok() ? " " : "", name.ok() ? name->c_str() : "", c.n_layers(), c.model_dim,
              c.layers[0].heads, c.layers[0].kv_heads, c.layers[0].head_dim, c.layers[0].ff_dim, c.vocab_size, c.ctx,
              model::pos_name(c.pos));
  if (c.pos == model::PosType::kRope) std::printf(" theta %g", c.rope_theta);
  const std::string head = c.encoder ? std::string("encoder, ") + model::pooling_name(c.pooling) + " pooling" +
                                           (c.normalize ? " (L2-normalised)" : "")
                                     : std::string(c.tied_embeddings ? "tied" : "separate") + " output";
  std::printf(", %s eps %g, %s, %s, attention %s, blocks %s | %.1fM parameters\n", model::norm_name(c.norm),
              c.norm_eps, model::mlp_name(c.mlp), head.c_str(), patterns.c_str(), blocks.c_str(), n_elements / 1e6);
  std::printf("tensor types:");
  for (const auto& [t, e] : by_type) std::printf(" %s x%lld (%.1f MiB)", t.c_str(), (long long)e.first, mib(double(e.second)));
  std::printf("\n");
  std::printf("memory plan at ctx %d: weights %.1f MiB (as run; %.1f MiB in the file) + KV cache %.1f KiB/token"
              " x %d = %.1f MiB + scratch %.1f MiB",
              c.ctx, mib(weights), mib(double(stored_weights)), kv_per_token / 1024, c.ctx, mib(kv), mib(scratch));
  if (plan.positions) std::printf(" + RoPE tables %.1f MiB", mib(positions));
  std::printf(" = %.1f MiB\n", mib(total));
  if (chat.ok()) std::printf("chat template: %zu characters in tokenizer.chat_template\n", chat->size());
  if (file) {
    std::printf("metadata:\n");
    for (const auto& kv : file->metadata())
      std::printf("  %-44s %s\n", kv.key.c_str(), io::format_gguf_value(kv.value).c_str());
  }
  if (f.tensors) {
    std::printf("tensors (shapes slowest dimension first):\n");
    for (const auto& t : store.tensors()) {
      std::string dims;
      for (size_t i = 0; i < t.shape.size(); ++i) dims += (i ? " x " : "") + std::to_string(t.shape[i]);
      std::printf("  %-32s %-6s [%s] %.2f MiB\n", t.name.c_str(), t.type_name.c_str(), dims.c_str(),
                  mib(double(t.n_bytes)));
    }
  }
  return 0;
}

}  // namespace

void register_info(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("info", "Metadata, config, tensors and memory plan of a model file");
  auto f = std::make_shared<InfoFlags>();
  c->add_option("model", f->model, "Model (GGUF file, or Hugging Face directory / .safetensors)")->required();
  c->add_option("--ctx", f->ctx, "Context for the memory plan (default: the model's)");
  c->add_flag("--tensors", f->tensors, "List every tensor");
  add_cache_type_flags(c, f->cache_k, f->cache_v);
  c->add_flag("--json", f->json, "One JSON object");
  c->callback([f, &cmds] { cmds.run = [f] { return run_info(*f); }; });
}

}  // namespace longctx::cli
