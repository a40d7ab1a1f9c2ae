// What running a model for `ctx` tokens takes, before anything is allocated: its weights as
// inference reads them (Model::weight_bytes / planned_weight_bytes), the KV cache (the pool
// blocks one sequence holds at most: kvcache/kv_cache.h; window slots hold their window only),
// the activation scratch of one prefill pass of `ubatch` tokens (the arena, exactly as the
// blocks declare it, and one row of logits) and the RoPE tables.
#pragma once
#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kvcache/kv_cache.h"
#include "model/blocks.h"
#include "model/config.h"

namespace longctx::model {

struct MemoryPlan {
  // kv_per_token: K and V bytes of one position over all cache slots (kv_heads * head_dim
  // elements each, in the cache types). positions: the RoPE cos/sin tables for the whole
  // context (0 for other position types).
  int64_t weights = 0, kv_per_token = 0, kv = 0, scratch = 0, positions = 0;
  int64_t total() const { return weights + kv + scratch + positions; }
};

// What each block that keeps keys keeps: one cache slot per such block, in model order
// (kvcache::make_geometry lays the cache out from these).
std::vector<kvcache::KvSlot> kv_slots(const ModelBlocks& blocks);

// The plan of a cache of `ctx` positions filled in passes of `ubatch`, plus `extra_blocks` pool
// blocks (the pages forks write: Model::CacheOptions::extra_blocks). The RoPE tables are those
// of the model's whole context, c.ctx. Error for a cache type the model cannot use.
Expected<MemoryPlan> plan_memory(const ModelConfig& c, int64_t weight_bytes, int64_t ctx, int64_t ubatch,
                                 uint32_t k_type = 0, uint32_t v_type = 0, int64_t extra_blocks = 0);

// Floats of inference arena for a pass of `rows` tokens whose last `out_rows` get logits: the
// hidden states in two alternating buffers, the largest block's working set (one block at a
// time) and the normed rows whose logits are wanted.
int64_t infer_arena_floats(const ModelConfig& c, const ModelBlocks& blocks, int64_t rows, int64_t out_rows);
// Floats of arena a training step of [batch, seq_len] takes: every block's output and saved
// activations, the head's, then the largest block backward.
int64_t train_arena_floats(const ModelConfig& c, const ModelBlocks& blocks, int64_t batch, int64_t seq_len);

// MemAvailable of /proc/meminfo in bytes; -1 where unknown.
int64_t available_memory_bytes();
// An error naming the plan's parts when the KV cache, scratch and RoPE tables (what is still to
// be allocated; the weights are loaded or mapped by then) exceed the available memory.
Status check_memory(const MemoryPlan& plan);

}  // namespace longctx::model
