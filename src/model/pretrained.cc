#include "model/pretrained.h"

#include "model/architectures/llama.h"

namespace longctx::model {

Expected<ModelConfig> config_of(const io::GgufFile& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch == "longctx") return read_config(f);
  if (*arch == "llama") return arch::llama_config(f);
  return Status::Error("architecture '" + *arch + "' is not supported (expected longctx or llama)");
}

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
  auto cfg = config_of(*f);
  if (!cfg.ok()) return fail(cfg.status());
  if (opt.ctx > 0) cfg->ctx = opt.ctx;
  auto out = build_loaded(*f, *cfg);
  if (!out.ok()) return fail(out.status());
  return out;
}

}  // namespace longctx::model
