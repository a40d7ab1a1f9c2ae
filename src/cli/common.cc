#include "cli/common.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>

#include "model/lora.h"

namespace longctx::cli {

std::string with_flags(std::string m) {
  static const std::string kMark = "setting '";
  for (size_t at; (at = m.find(kMark)) != std::string::npos;) {
    const size_t end = m.find('\'', at + kMark.size());
    if (end == std::string::npos) break;
    std::string flag = "--" + m.substr(at + kMark.size(), end - at - kMark.size());
    for (char& c : flag)
      if (c == '_') c = '-';
    m.replace(at, end + 1 - at, flag);
  }
  return m;
}

int fail(const Status& s) { return fail(with_flags(s.message())); }
int fail(const std::string& message) {
  std::fflush(stdout);
  std::fprintf(stderr, "longctx: error: %s\n", message.c_str());
  return 1;
}

bool stdout_is_tty() { return ::isatty(STDOUT_FILENO) == 1; }

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string format_rate(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

void add_dequantize_flag(CLI::App* c, bool& dequantize) {
  c->add_flag("--dequantize", dequantize,
              "Dequantize all weights to fp32 on load (reference path: slower, several times the memory)");
}

void add_precision_flag(CLI::App* c, std::string& precision, const std::string& default_value) {
  precision = default_value;
  c->add_option("--precision", precision,
                "Matrix products of fp32 weights: fp32, bf16 (bf16 operands, fp32 sums; needs AMX-BF16) or auto "
                "(bf16 where the CPU has it)")
      ->capture_default_str();
}

Status bf16_unavailable() {
  return Status::Error("--precision bf16: this CPU has no AMX-BF16 (or LONGCTX_NO_AMX is set); use fp32");
}

Status apply_precision(const std::string& precision, model::Model& m) {
  if (precision == "fp32") {
    m.set_bf16(false);
  } else if (precision == "bf16") {
    if (!m.set_bf16(true)) return bf16_unavailable();
  } else if (precision == "auto") {
    m.set_bf16(true);
  } else {
    return Status::Error("--precision must be fp32, bf16 or auto (got '" + precision + "')");
  }
  return Status::Ok();
}

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  return a == b || std::filesystem::equivalent(a, b, ec);
}

void add_lora_flags(CLI::App* c, LoraFlags& f) {
  c->add_option("--lora", f.files, "LoRA adapter (llama.cpp's GGUF adapter layout); repeat for several");
  c->add_option("--lora-scale", f.scales, "Scale of the adapters (one for all, or one per --lora; default 1)");
}

Status apply_lora_flags(const LoraFlags& f, model::Model& m) {
  if (!f.scales.empty() && f.scales.size() != 1 && f.scales.size() != f.files.size())
    return Status::Error("give one --lora-scale for all adapters or one per --lora (" + std::to_string(f.files.size()) +
                         " adapters, " + std::to_string(f.scales.size()) + " scales)");
  if (f.files.empty() && !f.scales.empty()) return Status::Error("--lora-scale without --lora");
  for (size_t i = 0; i < f.files.size(); ++i) {
    const float s = f.scales.empty() ? 1.0f : f.scales.size() == 1 ? f.scales[0] : f.scales[i];
    LONGCTX_RETURN_IF_ERROR(model::apply_adapter_file(m, f.files[i], s));
  }
  return Status::Ok();
}

void add_cache_type_flags(CLI::App* c, std::string& k_type, std::string& v_type) {
  c->add_option("--cache-type-k", k_type, "Element type of the K cache: f32 (default), f16 or q8_0");
  c->add_option("--cache-type-v", v_type, "Element type of the V cache: f32 (default), f16 or q8_0");
}

void add_context_shift_flags(CLI::App* c, bool& shift, int64_t& keep) {
  c->add_flag("--context-shift", shift,
              "When the context is full, drop the older half of the tokens after --keep and go on (default: stop "
              "with an error)");
  c->add_option("--keep", keep, "Tokens from the start a context shift keeps (default 0)");
}

void add_sampling_flags(CLI::App* c, infer::SamplerOptions& s) {
  c->add_option("--temp", s.temp, "Temperature (0: greedy)");
  c->add_option("--top-k", s.top_k, "Keep the k most likely tokens (0: off)");
  c->add_option("--top-p", s.top_p, "Nucleus sampling threshold (1: off)");
  c->add_option("--min-p", s.min_p, "Drop tokens below min-p times the best one's probability (0: off)");
  c->add_option("--repeat-penalty", s.repeat_penalty, "Penalty on recently seen tokens (1: off)");
  c->add_option("--repeat-last-n", s.repeat_last_n, "How many recent tokens the penalty looks at");
  c->add_option("--seed", s.seed, "Sampling seed");
}

}  // namespace longctx::cli
