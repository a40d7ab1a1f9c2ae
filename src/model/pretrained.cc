#include "model/pretrained.h"

#include <vector>

#include "model/architectures/llama.h"
#include "quant/formats.h"

namespace longctx::model {
namespace {

// Copies every tensor of the layout from the file, dequantizing rows to fp32. Every tensor of
// the file must be one the layout knows, with the layout's shape.
Status load_weights(const io::GgufFile& f, Model& m) {
  const ParamLayout& layout = m.layout();
  for (const auto& ti : f.tensors())
    if (!layout.find(ti.name)) return Status::Error("unexpected tensor '" + ti.name + "' for this architecture");
  for (const ParamTensor& t : layout.tensors()) {
    const io::GgufTensorInfo* ti = f.find_tensor(t.name);
    if (!ti) return Status::Error("tensor '" + t.name + "' is missing");
    const std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (ti->dims != dims) return Status::Error("tensor '" + t.name + "' has a shape inconsistent with the config");
    const int64_t row = dims[0], rows = t.numel / row;
    const int64_t row_bytes = static_cast<int64_t>(ti->n_bytes) / rows;
    for (int64_t r = 0; r < rows; ++r) {
      Status st = quant::dequantize_row(ti->type, ti->data + r * row_bytes, m.params() + t.offset + r * row, row);
      if (!st.ok()) return st.Wrap("tensor '" + t.name + "'");
    }
  }
  return Status::Ok();
}

}  // namespace

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto arch = f->get_string("general.architecture");
  if (!arch.ok()) return arch.status().Wrap("model '" + path + "'");
  auto fail = [&](const Status& s) { return s.Wrap("model '" + path + "'"); };
  if (*arch == "longctx") {
    auto loaded = load_checkpoint(path);
    if (!loaded.ok() || opt.ctx <= 0 || opt.ctx == loaded->model->config().ctx) return loaded;
    ModelConfig cfg = loaded->model->config();
    cfg.ctx = opt.ctx;
    auto m = loaded->model->with_config(cfg);
    if (!m.ok()) return fail(m.status());
    loaded->model = std::move(*m);
    return loaded;
  }
  Expected<ModelConfig> cfg = Status::Error("architecture '" + *arch + "' is not supported (expected longctx or llama)");
  if (*arch == "llama") cfg = arch::llama_config(*f);
  if (!cfg.ok()) return fail(cfg.status());
  if (opt.ctx > 0) cfg->ctx = opt.ctx;
  auto tok = read_tokenizer(*f);
  if (!tok.ok()) return fail(tok.status());
  if (tok->vocab_size() != cfg->vocab_size)
    return fail(Status::Error("tokenizer has " + std::to_string(tok->vocab_size()) + " tokens but the model " +
                              std::to_string(cfg->vocab_size)));
  LoadedModel out{std::make_unique<Model>(*cfg), std::move(*tok)};
  Status st = load_weights(*f, *out.model);
  if (!st.ok()) return fail(st);
  return out;
}

}  // namespace longctx::model
