#include "model/memory_plan.h"

#include <algorithm>
#include <cstdio>

#include "position/rope.h"

namespace longctx::model {

using layers::arena_floats;

std::vector<kvcache::KvSlot> kv_slots(const ModelBlocks& blocks) {
  std::vector<kvcache::KvSlot> slots;
  for (const auto& b : blocks.blocks)
    for (const kvcache::KvSlot& s : b->kv_slots()) slots.push_back(s);
  return slots;
}

int64_t infer_arena_floats(const ModelConfig& c, const ModelBlocks& blocks, int64_t rows, int64_t out_rows) {
  layers::Pass pass;
  pass.seq_len = rows;
  int64_t block = 0;
  for (const auto& b : blocks.blocks) block = std::max(block, b->forward_floats(pass));
  return 2 * arena_floats(rows * c.model_dim) + block + arena_floats(out_rows * c.model_dim);
}

int64_t train_arena_floats(const ModelConfig& c, const ModelBlocks& blocks, int64_t batch, int64_t seq_len) {
  const int64_t rows = batch * seq_len, D = c.model_dim, V = c.vocab_size;
  layers::Pass pass;
  pass.batch = batch;
  pass.seq_len = seq_len;
  pass.save = true;
  int64_t fwd = arena_floats(rows * D), bwd = 0;  // the embeddings
  for (const auto& b : blocks.blocks) {
    fwd += arena_floats(rows * D) + b->forward_floats(pass);
    bwd = std::max(bwd, b->backward_floats(pass));
  }
  // The head: normed rows, mean, rstd, logits; then dL/dxn and dL/dx.
  fwd += arena_floats(rows * D) + 2 * arena_floats(rows) + arena_floats(rows * V);
  return fwd + 2 * arena_floats(rows * D) + bwd;
}

Expected<MemoryPlan> plan_memory(const ModelConfig& c, int64_t weight_bytes, int64_t ctx, int64_t ubatch,
                                 uint32_t k_type, uint32_t v_type, int64_t extra_blocks) {
  auto blocks = make_blocks(c);
  if (!blocks.ok()) return blocks.status();
  auto geo = kvcache::make_geometry(kv_slots(*blocks), k_type, v_type);
  if (!geo.ok()) return geo.status();
  MemoryPlan p;
  p.weights = weight_bytes;
  for (const auto& s : geo->slots) p.kv_per_token += s.k_row_bytes + s.v_row_bytes;
  p.kv = (geo->max_blocks(ctx, std::min(ubatch, ctx)) + extra_blocks) * geo->block_bytes();
  // A prefill pass keeps the logits of its last token only.
  p.scratch = (infer_arena_floats(c, *blocks, std::min(ubatch, ctx), 1) + c.vocab_size) * int64_t(sizeof(float));
  if (c.pos == PosType::kRope) p.positions = position::Rope::table_bytes(c.layers[0].head_dim, c.ctx);
  return p;
}

int64_t available_memory_bytes() {
  std::FILE* f = std::fopen("/proc/meminfo", "r");
  if (!f) return -1;
  char line[256];
  long long kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "MemAvailable: %lld kB", &kb) == 1) break;
  std::fclose(f);
  return kb < 0 ? -1 : kb * 1024;
}

Status check_memory(const MemoryPlan& plan) {
  const int64_t avail = available_memory_bytes();
  const int64_t need = plan.kv + plan.scratch + plan.positions;
  if (avail < 0 || need <= avail) return Status::Ok();
  auto mib = [](int64_t b) { return std::to_string((b + (1 << 20) - 1) >> 20) + " MiB"; };
  const std::string positions = plan.positions ? ", the RoPE tables " + mib(plan.positions) : "";
  return Status::Error("not enough memory: the KV cache needs " + mib(plan.kv) + " (" +
                       std::to_string(plan.kv_per_token) + " bytes per token)" + positions + " and the scratch " +
                       mib(plan.scratch) + ", but " + mib(avail) + " are available (weights: " + mib(plan.weights) +
                       " already loaded); use a smaller setting 'ctx'");
}

}  // namespace longctx::model
