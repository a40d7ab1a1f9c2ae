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
  auto opened = io::GgufFile::open(path);
  if (!opened.ok()) return opened.status();
  auto f = std::make_shared<const io::GgufFile>(std::move(*opened));
  auto fail = [&](const Status& s) { return s.Wrap("model '" + path + "'"); };
  auto cfg = config_of(*f);
  if (!cfg.ok()) return fail(cfg.status());
  if (opt.ctx > 0 && opt.ctx != cfg->ctx) {
    if (auto st = check_context_growth(*cfg, opt.ctx); !st.ok()) return fail(st);
    cfg->ctx = opt.ctx;
    if (auto st = cfg->validate(); !st.ok()) return fail(st);
  }
  auto out = build_loaded(std::move(f), *cfg, opt.keep_quantized);
  if (!out.ok()) return fail(out.status());
  return out;
}

}  // namespace longctx::model
