// Random-weight models of any llama shape, for benchmarking shapes no file exists for (MHA, GQA
// and MQA, full or sliding-window attention) on equal footing. The spec:
//   llama:layers=30,model_dim=576,heads=9,kv_heads=3,ff_dim=1536,vocab=49152[,head_dim=64]
//         [,window=4096][,ctx=8192][,type=q8_0|q4_0|q4_1|f16|f32][,seed=1]
// (defaults: SmolLM2-135M's shape, head_dim model_dim / heads, full causal attention, ctx 8192,
// Q8_0 matrices, seed 1). RoPE (theta 10000), RMSNorm, SwiGLU, tied output, as SmolLM2.
// Matrices are drawn N(0, 0.02) in fp32 and quantized to `type`, one tensor at a time, into an
// in-memory GGUF that the model then reads in place, exactly as a model loaded from a file.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "model/model.h"

namespace longctx::model {

struct RandomModelSpec {
  ModelConfig config;
  uint32_t type = 8;  // kQ8_0
  uint64_t seed = 1;
};

// Errors name the key: unknown, not a number, out of range, or a shape validate() refuses.
Expected<RandomModelSpec> parse_random_model(const std::string& spec);
Expected<std::unique_ptr<Model>> make_random_model(const RandomModelSpec& spec);

}  // namespace longctx::model
