#include "model/pretrained.h"

#include "model/architectures/llama.h"
#include "quant/formats.h"

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

Status export_model(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok,
                    const std::string& arch) {
  if (arch != "llama") return Status::Error("export: architecture '" + arch + "' is not supported (expected llama)");
  if (model.has_mapped_weights()) return Status::Error("export: the model must be loaded with fp32 weights");
  LONGCTX_RETURN_IF_ERROR(arch::llama_exportable(model.config()));
  io::GgufWriter w;
  arch::write_llama_keys(w, model.config());
  w.set_u32("general.file_type", 0);  // all F32
  write_tokenizer_keys(w, tok);
  const tokenizer::GgufVocab v = tok.gguf_vocab();
  if (v.model == "gpt2" && v.pre == "longctx") w.set_string("tokenizer.ggml.pre", "gpt-2");
  for (const ParamTensor& t : model.layout().tensors()) {
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());  // GGUF: fastest dimension first
    LONGCTX_RETURN_IF_ERROR(
        w.add_tensor(t.name, dims, quant::kF32, model.params() + t.offset, t.numel * sizeof(float)));
  }
  return w.write(path);
}

}  // namespace longctx::model
