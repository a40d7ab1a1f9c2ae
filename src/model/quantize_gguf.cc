// Whole-file GGUF conversion (quantize_gguf.h). Every tensor is planned first (output type,
// copy or convert, warnings, unsupported sources), so a file that cannot be converted fails
// before any work; then tensors are converted row by row into buffers that the GgufWriter
// references until it has written them.
#include "model/quantize_gguf.h"

#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "core/check.h"
#include "core/element_type.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "quant/formats.h"

namespace longctx::model {
namespace {

constexpr uint32_t kGgmlQuantizationVersion = 2;  // GGML_QNT_VERSION

struct OutputType {
  uint32_t type;
  uint32_t llama_ftype;  // LLAMA_FTYPE_ALL_F32, _MOSTLY_F16, _MOSTLY_Q4_0, ...
};
constexpr OutputType kOutputTypes[] = {{kF32, 0}, {kF16, 1}, {kBF16, 32}, {kQ8_0, 7}, {kQ4_0, 2}, {kQ4_1, 3}};

bool is_integer_type(uint32_t type) { return type >= 24 && type <= 27; }  // I8, I16, I32, I64

std::string quoted(const std::string& s) { return "'" + s + "'"; }

struct Plan {
  uint32_t out_type = 0;
  bool copy = false;  // bytes unchanged
};

}  // namespace

Expected<uint32_t> parse_output_type(const std::string& name) {
  const ElementTypeInfo* info = element_type_by_name(name);  // any case
  std::string all;
  for (const OutputType& t : kOutputTypes) {
    if (info != nullptr && info->id == t.type) return t.type;
    std::string lower = element_type_name(t.type);
    std::transform(lower.begin(), lower.end(), lower.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    all += all.empty() ? "" : ", ";
    all += lower;
  }
  return Status::Error("unknown type " + quoted(name) + " (expected one of " + all + ")");
}

uint32_t llama_file_type(uint32_t type) {
  for (const OutputType& t : kOutputTypes)
    if (t.type == type) return t.llama_ftype;
  CHECK_MSG(false, "llama_file_type: not an output type");
  return 0;
}

namespace {

// Decides every tensor's output type and whether its bytes are copied, warning as the rules of
// quantize_gguf.h say; fails on a source it cannot dequantize before any work is done. Counts
// n_tensors, in_bytes and n_requantized into `stats`.
Expected<std::vector<Plan>> plan_tensors(const std::vector<io::GgufTensorInfo>& tensors, uint32_t type,
                                         const std::string& where,
                                         const std::function<void(const std::string&)>& warn,
                                         QuantizeGgufStats* stats) {
  std::vector<Plan> plans(tensors.size());
  std::map<uint32_t, size_t> requantized;  // source type -> tensors
  stats->n_tensors = tensors.size();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const io::GgufTensorInfo& t = tensors[i];
    Plan& p = plans[i];
    stats->in_bytes += t.n_bytes;
    if (is_integer_type(t.type)) {
      p = {t.type, true};
      warn("tensor " + quoted(t.name) + " is " + element_type_name(t.type) + ": copied unchanged");
      continue;
    }
    if (t.dims.size() == 1) {
      p.out_type = kF32;
    } else if (t.dims[0] % quant::block_size(type) != 0) {
      p.out_type = kF16;
      warn("tensor " + quoted(t.name) + " has rows of " + std::to_string(t.dims[0]) +
           " elements, not a whole number of " + element_type_name(type) + " blocks of " +
           std::to_string(quant::block_size(type)) + ": kept as F16");
    } else {
      p.out_type = type;
    }
    p.copy = t.type == p.out_type;
    if (!p.copy && !quant::can_dequantize(t.type)) {
      return Status::Error(where + ": tensor " + quoted(t.name) + " is " + element_type_name(t.type) +
                           ", which longctx cannot dequantize (supported: F32, F16, BF16, Q8_0, "
                           "Q4_0, Q4_1, Q4_K, Q5_K, Q6_K)");
    }
    if (!p.copy && quant::is_quantized(t.type)) ++requantized[t.type];
  }
  for (const auto& [src_type, count] : requantized) {
    warn(std::to_string(count) + (count == 1 ? " tensor is" : " tensors are") + " already " +
         element_type_name(src_type) + ": converting to " + element_type_name(type) +
         " cannot add precision (dequantized, then converted)");
    stats->n_requantized += count;
  }
  return plans;
}

// Converts tensor `t` row by row (dequantize, then quantize to `out_type`) on the global pool,
// into `out`, sized here.
Status convert_tensor(const io::GgufTensorInfo& t, uint32_t out_type, std::vector<uint8_t>* out) {
  const int64_t row = t.dims[0];
  const int64_t rows = row > 0 ? static_cast<int64_t>(t.n_elements) / row : 0;
  const int64_t in_row = quant::row_bytes(t.type, row), out_row = quant::row_bytes(out_type, row);
  CHECK(in_row >= 0 && out_row >= 0);  // the reader checked whole blocks; the plan F16
  out->resize(static_cast<size_t>(rows * out_row));
  uint8_t* dst = out->data();
  ThreadPool& pool = ThreadPool::global();
  std::vector<Status> errors(static_cast<size_t>(pool.threads()));
  pool.parallel_range(rows, [&](int64_t begin, int64_t end, int thread) {
    std::vector<float> tmp(static_cast<size_t>(row));
    for (int64_t r = begin; r < end; ++r) {
      Status st = quant::dequantize_row(t.type, t.data + r * in_row, tmp.data(), row);
      if (st.ok()) st = quant::quantize_row(out_type, tmp.data(), dst + r * out_row, row);
      if (!st.ok()) {
        errors[static_cast<size_t>(thread)] = st;
        return;
      }
    }
  });
  for (const Status& st : errors)
    if (!st.ok()) return st;
  return Status::Ok();
}

}  // namespace

Expected<QuantizeGgufStats> quantize_gguf(const std::string& in_path, const std::string& out_path, uint32_t type,
                                          const QuantizeGgufOptions& options) {
  bool valid_type = false;
  for (const OutputType& t : kOutputTypes) valid_type |= t.type == type;
  if (!valid_type) {
    return Status::Error("quantize: cannot write tensors of type " + element_type_name(type) +
                         " (expected F32, F16, BF16, Q8_0, Q4_0 or Q4_1)");
  }
  auto warn = [&](const std::string& m) {
    if (options.warn) options.warn(m);
  };
  Expected<io::GgufFile> in = io::GgufFile::open(in_path);
  if (!in.ok()) return in.status();
  const std::vector<io::GgufTensorInfo>& tensors = in->tensors();
  const std::string where = "quantize: " + in_path;

  QuantizeGgufStats stats;
  Expected<std::vector<Plan>> plans = plan_tensors(tensors, type, where, warn, &stats);
  if (!plans.ok()) return plans.status();

  // ---- metadata ----
  io::GgufWriter w;
  for (const io::GgufKv& kv : in->metadata()) w.set(kv.key, kv.value);
  w.set_u32("general.file_type", llama_file_type(type));
  if (quant::is_quantized(type) && in->find("general.quantization_version") == nullptr) {
    w.set_u32("general.quantization_version", kGgmlQuantizationVersion);
  }

  // ---- convert ----
  std::vector<std::vector<uint8_t>> buffers;  // outlive w.write(); inner buffers never move
  buffers.reserve(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const io::GgufTensorInfo& t = tensors[i];
    const Plan& p = (*plans)[i];
    if (options.progress) options.progress(i, tensors.size(), t.name);
    const void* data = t.data;
    uint64_t n_bytes = t.n_bytes;
    if (!p.copy) {
      buffers.emplace_back();
      Status st = convert_tensor(t, p.out_type, &buffers.back());
      if (!st.ok()) return st.Wrap(where + ": tensor " + quoted(t.name));
      data = buffers.back().data();
      n_bytes = buffers.back().size();
    }
    if (is_integer_type(t.type)) {
      ++stats.n_integer;
    } else if (p.out_type == type) {
      ++stats.n_as_type;
    } else if (t.dims.size() == 1) {
      ++stats.n_f32;
    } else {
      ++stats.n_f16_fallback;
    }
    if (p.copy) ++stats.n_copied;
    stats.out_bytes += n_bytes;
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, t.dims, p.out_type, data, n_bytes).Wrap("quantize"));
  }
  LONGCTX_RETURN_IF_ERROR(w.write(out_path));
  return stats;
}

}  // namespace longctx::model
