// Converting a whole GGUF file to one tensor type (`longctx quantize IN OUT TYPE`), for our
// checkpoints and llama.cpp models alike.
//
// Rules, per tensor (dims in GGUF order, dims[0] the row length):
//   - 2-D and larger (weight matrices, stacks of them) become TYPE; a row length that is not a
//     whole number of TYPE's blocks keeps the tensor in F16 instead (with a warning);
//   - 1-D tensors (norms, biases) become F32;
//   - a tensor already of its output type is copied byte for byte (no requantization);
//   - integer tensors (I8..I64) are copied unchanged (with a warning);
//   - anything else is dequantized to fp32 rows first, then converted. A source that is already
//     quantized (Q4_1 -> Q8_0, say) is warned about: converting cannot add precision.
// Metadata is copied in order; general.file_type is set to llama.cpp's LLAMA_FTYPE for TYPE and
// general.quantization_version (2) is added when TYPE is quantized. The output is written
// atomically (io::GgufWriter), so on any error no OUT is left behind.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"

namespace longctx::model {

// "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1" (any case) -> ggml type id. The error names the
// bad value and lists these.
Expected<uint32_t> parse_output_type(const std::string& name);
// llama.cpp's LLAMA_FTYPE for a file whose matrices are of ggml type `type` (general.file_type):
// F32 0, F16 1, Q4_0 2, Q4_1 3, Q8_0 7, BF16 32. CHECKs that `type` is one of these.
uint32_t llama_file_type(uint32_t type);

struct QuantizeGgufOptions {
  // Called before tensor i (0-based) of n is converted.
  std::function<void(size_t i, size_t n, const std::string& name)> progress;
  // One line per warning, without a prefix.
  std::function<void(const std::string& message)> warn;
};

struct QuantizeGgufStats {
  size_t n_tensors = 0;
  // Each tensor is counted in one of these four:
  size_t n_as_type = 0;       // stored as the requested type
  size_t n_f16_fallback = 0;  // matrices kept F16: rows not whole blocks
  size_t n_f32 = 0;           // 1-D tensors stored F32 (F32 not requested)
  size_t n_integer = 0;       // integer tensors, copied unchanged
  size_t n_copied = 0;        // tensors whose bytes were copied (already their output type)
  size_t n_requantized = 0;   // sources that were already quantized and changed type
  uint64_t in_bytes = 0;      // tensor data
  uint64_t out_bytes = 0;
};

// Reads `in_path`, converts as above, writes `out_path`. Rows are converted on the global
// ThreadPool. Errors: the input cannot be read or parsed, a tensor of a type that cannot be
// dequantized (naming tensor and type), an invalid output type, or the write failing.
Expected<QuantizeGgufStats> quantize_gguf(const std::string& in_path, const std::string& out_path, uint32_t type,
                                          const QuantizeGgufOptions& options = {});

}  // namespace longctx::model
