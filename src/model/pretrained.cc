#include "model/pretrained.h"

#include <filesystem>

#include "model/architectures/gpt2.h"
#include "model/architectures/llama.h"
#include "quant/formats.h"
#include "tokenizer/hf_json.h"

namespace longctx::model {

Expected<ModelConfig> config_of(const io::GgufFile& f) {
  auto arch = f.get_string("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch == "longctx") return read_config(f);
  if (*arch == "llama") return arch::llama_config(f);
  if (*arch == "gpt2") return arch::gpt2_config(f);
  return Status::Error("architecture '" + *arch + "' is not supported (expected longctx, llama or gpt2)");
}

WeightMap weights_of(const std::string& arch, const ModelConfig& c) {
  if (arch == "gpt2") return arch::gpt2_gguf_weights(c);
  return WeightMap{};  // longctx and llama use longctx's names
}

namespace {

Status apply_ctx(ModelConfig* cfg, const LoadOptions& opt) {
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
  auto out = build_loaded(TensorStore::from_gguf(std::move(f)), map, std::move(*tok), *cfg, opt.keep_quantized);
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

Expected<HfModelInfo> read_hf_model(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  HfModelInfo info;
  info.dir = fs::is_directory(path, ec) ? fs::path(path) : fs::path(path).parent_path();
  if (info.dir.empty()) info.dir = ".";
  auto hf = arch::HfConfig::load((fs::path(info.dir) / "config.json").string());
  if (!hf.ok()) return hf.status();
  auto type = hf->get_string("model_type");
  if (!type.ok()) return type.status();
  info.model_type = *type;
  Expected<ModelConfig> cfg = Status::Error("");
  if (*type == "llama" || *type == "mistral") {
    cfg = arch::llama_config_hf(*hf);
    if (cfg.ok()) info.weights = arch::llama_hf_weights(*cfg);
  } else if (*type == "gpt2") {
    cfg = arch::gpt2_config_hf(*hf);
    if (cfg.ok()) info.weights = arch::gpt2_hf_weights(*cfg);
  } else {
    return hf->error("model_type", "is '" + *type + "' (supported: llama, mistral, gpt2)");
  }
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
                          opt.keep_quantized);
  if (!out.ok()) return fail(out.status());
  return out;
}

}  // namespace

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt) {
  return is_hf_model_path(path) ? load_hf(path, opt) : load_gguf(path, opt);
}

Status export_model(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok,
                    const std::string& arch) {
  if (arch != "llama" && arch != "gpt2")
    return Status::Error("export: architecture '" + arch + "' is not supported (expected llama or gpt2)");
  if (model.has_mapped_weights()) return Status::Error("export: the model must be loaded with fp32 weights");
  const ModelConfig& c = model.config();
  io::GgufWriter w;
  if (arch == "llama") {
    LONGCTX_RETURN_IF_ERROR(arch::llama_exportable(c));
    arch::write_llama_keys(w, c);
  } else {
    LONGCTX_RETURN_IF_ERROR(arch::gpt2_exportable(c));
    arch::write_gpt2_keys(w, c);
  }
  w.set_u32("general.file_type", 0);  // all F32
  write_tokenizer_keys(w, tok);
  const tokenizer::GgufVocab v = tok.gguf_vocab();
  if (v.model == "gpt2" && v.pre == "longctx") w.set_string("tokenizer.ggml.pre", "gpt-2");
  // gpt2 fuses Q, K and V into one [3D, D] tensor (and bias): concatenated rows, kept alive
  // here until write() returns.
  std::vector<std::vector<float>> fused;
  for (const ParamTensor& t : model.layout().tensors()) {
    int layer = -1;
    std::string rest;
    const bool block = split_block_name(t.name, &layer, &rest);
    if (arch == "gpt2" && block && (rest.rfind("attn_k.", 0) == 0 || rest.rfind("attn_v.", 0) == 0)) continue;
    if (arch == "gpt2" && block && rest.rfind("attn_q.", 0) == 0) {
      const std::string suffix = rest.substr(7), p = "blk." + std::to_string(layer) + ".";
      std::vector<float> qkv;
      for (const char* part : {"attn_q.", "attn_k.", "attn_v."}) {
        const ParamTensor* pt = model.layout().find(p + part + suffix);
        qkv.insert(qkv.end(), model.params() + pt->offset, model.params() + pt->offset + pt->numel);
      }
      std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
      dims.back() *= 3;  // rows (the slowest dimension; a bias has only that one)
      fused.push_back(std::move(qkv));
      LONGCTX_RETURN_IF_ERROR(w.add_tensor(p + "attn_qkv." + suffix, dims, kF32, fused.back().data(),
                                           fused.back().size() * sizeof(float)));
      continue;
    }
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());  // GGUF: fastest dimension first
    LONGCTX_RETURN_IF_ERROR(
        w.add_tensor(t.name, dims, kF32, model.params() + t.offset, t.numel * sizeof(float)));
  }
  return w.write(path);
}

}  // namespace longctx::model
