// Shared helpers of the subcommands: error exit, terminal detection, time formatting.
#pragma once
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>

#include "core/status.h"
#include "infer/sampler.h"
#include "model/model.h"

namespace longctx::cli {

// Prints "longctx: error: <message>" and returns the exit code to use (1). Library messages name
// an option as "setting 'top_k'"; it is printed as its flag, --top-k (with_flags).
int fail(const Status& s);
std::string with_flags(std::string message);
int fail(const std::string& message);
bool stdout_is_tty();
// Whether two paths name the same file (the same string, or one file through links).
bool same_file(const std::string& a, const std::string& b);
std::string format_duration(double seconds);  // "4m12s"
std::string format_rate(double per_s);        // "12.3k"
// --temp, --top-k, --top-p, --min-p, --repeat-penalty, --repeat-last-n, --seed.
void add_sampling_flags(CLI::App* c, infer::SamplerOptions& s);
// --dequantize: every weight dequantized to fp32 on load (the reference path), instead of the
// matrices read in place in their file type.
void add_dequantize_flag(CLI::App* c, bool& dequantize);
// --precision fp32|bf16|auto: products of fp32 matrices in fp32 or bf16 with fp32 sums
// (model::Model::set_bf16). `auto`: bf16 where the CPU runs it, else fp32. apply_precision sets
// it on m; bf16 asked for on a CPU without AMX-BF16 is an error naming the CPU's lack.
void add_precision_flag(CLI::App* c, std::string& precision, const std::string& default_value);
Status apply_precision(const std::string& precision, model::Model& m);
// The error line of --precision bf16 on a CPU without AMX-BF16.
Status bf16_unavailable();
// --cache-type-k / --cache-type-v (f32, f16 or q8_0; checked with kvcache::parse_cache_type).
void add_cache_type_flags(CLI::App* c, std::string& k_type, std::string& v_type);
// --context-shift / --keep N (infer::Session::set_context_shift).
void add_context_shift_flags(CLI::App* c, bool& shift, int64_t& keep);
// --lora FILE (repeatable) and --lora-scale S (one for all, or one per --lora, in order):
// LoRA adapters in llama.cpp's GGUF layout applied at run time (model/lora.h).
struct LoraFlags {
  std::vector<std::string> files;
  std::vector<float> scales;
};
void add_lora_flags(CLI::App* c, LoraFlags& f);
// Applies them to m; errors name the file.
Status apply_lora_flags(const LoraFlags& f, model::Model& m);


}  // namespace longctx::cli
