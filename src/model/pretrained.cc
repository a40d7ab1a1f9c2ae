#include "model/pretrained.h"

#include <filesystem>

#include "model/architectures/architecture.h"
#include "tokenizer/hf_json.h"

namespace longctx::model {

Expected<ModelConfig> config_of(const io::GgufFile& f) {
  auto name = f.get_string("general.architecture");
  if (!name.ok()) return name.status();
  auto a = arch::find_gguf_architecture(*name);
  if (!a.ok()) return a.status();
  auto c = (*a)->gguf_config(f);
  if (!c.ok() || !c->added_layers.empty() || !f.find("longctx.expansion.added_blocks")) return c;
  // Layers `longctx expand` added to a pretrained model (model/expand.h).
  auto added = f.get_int_array("longctx.expansion.added_blocks");
  if (!added.ok()) return added.status();
  for (int64_t v : *added) {
    if (v < 0 || v >= c->n_layers()) return Status::Error("key 'longctx.expansion.added_blocks' names a layer past the block count");
    c->added_layers.push_back(static_cast<int>(v));
  }
  LONGCTX_RETURN_IF_ERROR(c->validate());
  return c;
}

WeightMap weights_of(const std::string& name, const ModelConfig& c) {
  auto a = arch::find_gguf_architecture(name);
  return a.ok() && (*a)->gguf_weights ? (*a)->gguf_weights(c) : WeightMap{};
}

namespace {

Status check_use(const ModelConfig& cfg, const LoadOptions& opt) {
  if (opt.use == LoadOptions::Use::kText && cfg.encoder)
    return Status::Error("is an encoder (it embeds text: longctx embed); it does not generate or score text");
  if (opt.use == LoadOptions::Use::kEmbed && cfg.pooling == Pooling::kNone)
    return Status::Error("has no pooling, so it gives no embeddings (an encoder or an embedding model is needed)");
  return Status::Ok();
}

Status apply_ctx(ModelConfig* cfg, const LoadOptions& opt) {
  LONGCTX_RETURN_IF_ERROR(check_use(*cfg, opt));
  if (opt.ctx > 0 && opt.ctx != cfg->ctx) {
    LONGCTX_RETURN_IF_ERROR(check_context_growth(*cfg, opt.ctx));
    cfg->ctx = opt.ctx;
    LONGCTX_RETURN_IF_ERROR(cfg->validate());
  }
  return Status::Ok();
}

Expected<LoadedModel> load_gguf(const std::string& path, const LoadOptions& opt) {
  auto opened = io::GgufFile::open(path);
  if (!opened.ok()) return opened.status();
  auto f = std::make_shared<const io::GgufFile>(std::move(*opened));
  auto fail = [&](const Status& s) { return s.Wrap("model '" + path + "'"); };
  auto cfg = config_of(*f);
  if (!cfg.ok()) return fail(cfg.status());
  if (auto st = apply_ctx(&*cfg, opt); !st.ok()) return fail(st);
  auto tok = read_tokenizer(*f);
  if (!tok.ok()) return fail(tok.status());
  const WeightMap map = weights_of(*f->get_string("general.architecture"), *cfg);
  auto out = build_loaded(TensorStore::from_gguf(std::move(f)), map, std::move(*tok), *cfg, opt.keep_quantized, opt.fp32);
  if (!out.ok()) return fail(out.status());
  return out;
}

}  // namespace

bool is_hf_model_path(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return true;
  const std::string ext = fs::path(path).extension().string();
  return ext == ".safetensors" || ext == ".json";
}

namespace {

// The directory of a Hugging Face model: the path, or the folder of a file inside it.
std::string hf_model_dir(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  return dir.empty() ? std::string(".") : dir.string();
}

}  // namespace

Expected<HfModelInfo> read_hf_model(const std::string& path) {
  namespace fs = std::filesystem;
  HfModelInfo info;
  info.dir = hf_model_dir(path);
  auto hf = arch::HfConfig::load((fs::path(info.dir) / "config.json").string());
  if (!hf.ok()) return hf.status();
  auto type = hf->get_string("model_type");
  if (!type.ok()) return type.status();
  info.model_type = *type;
  auto a = arch::find_hf_architecture(*type);
  if (!a.ok()) return hf->error("model_type", a.status().message());
  Expected<ModelConfig> cfg = (*a)->hf_config(*hf);
  if (cfg.ok()) info.weights = (*a)->hf_weights(*cfg);
  if (!cfg.ok()) return cfg.status();
  info.config = *cfg;
  auto st = io::SafetensorsModel::open(path);
  if (!st.ok()) return st.status();
  info.tensors = std::make_shared<const io::SafetensorsModel>(std::move(*st));
  return info;
}

namespace {

Expected<LoadedModel> load_hf(const std::string& path, const LoadOptions& opt) {
  auto fail = [&](const Status& s) { return s.Wrap("model '" + path + "'"); };
  auto info = read_hf_model(path);
  if (!info.ok()) return fail(info.status());
  if (auto st = apply_ctx(&info->config, opt); !st.ok()) return fail(st);
  auto vocab = tokenizer::load_hf_vocab(info->dir);
  if (!vocab.ok()) return fail(vocab.status());
  auto tok = tokenizer::BpeTokenizer::from_gguf(*vocab);
  if (!tok.ok()) return fail(tok.status());
  auto out = build_loaded(TensorStore::from_safetensors(info->tensors), info->weights, std::move(*tok), info->config,
                          opt.keep_quantized, opt.fp32);
  if (!out.ok()) return fail(out.status());
  return out;
}

}  // namespace

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt) {
  return is_hf_model_path(path) ? load_hf(path, opt) : load_gguf(path, opt);
}

Expected<tokenizer::BpeTokenizer> load_model_tokenizer(const std::string& path) {
  if (!is_hf_model_path(path)) return load_tokenizer(path);
  auto vocab = tokenizer::load_hf_vocab(hf_model_dir(path));
  if (!vocab.ok()) return vocab.status().Wrap("model '" + path + "'");
  auto tok = tokenizer::BpeTokenizer::from_gguf(*vocab);
  if (!tok.ok()) return tok.status().Wrap("model '" + path + "'");
  return tok;
}

Status export_model(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok,
                    const std::string& arch_name) {
  auto a = arch::find_export_architecture(arch_name);
  if (!a.ok()) return a.status();
  LONGCTX_RETURN_IF_ERROR((*a)->exportable(model.config()));
  io::GgufWriter w;
  std::vector<std::vector<float>> keep;  // tensors the architecture made (fused), until write()
  LONGCTX_RETURN_IF_ERROR((*a)->write(w, model, &keep));
  w.set_u32("general.file_type", 0);  // all F32
  write_tokenizer_keys(w, tok);
  const tokenizer::GgufVocab v = tok.gguf_vocab();
  if (v.model == "gpt2" && v.pre == "longctx") w.set_string("tokenizer.ggml.pre", "gpt-2");
  return w.write(path);
}

}  // namespace longctx::model
