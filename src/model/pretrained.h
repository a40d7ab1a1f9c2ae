// Loading any model file longctx runs: its own checkpoints (general.architecture "longctx") and
// pretrained GGUF models of the architectures in model/architectures/, with the tokenizer stored
// in the file. By default the matrices stay in the file's tensor types and are read in place
// (Model::map_matrices); `keep_quantized = false` dequantizes every weight to fp32 instead.
#pragma once
#include <set>
#include <string>

#include "core/status.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "model/weights.h"

namespace longctx::model {

struct LoadOptions {
  int ctx = 0;                // context to build the model for; 0: the one it was trained with
  // Matrices read in place in their file type. Inference; and training, which reads the
  // frozen ones in place: the matrices it trains are named in `fp32` (held in fp32 instead).
  bool keep_quantized = true;
  std::set<std::string> fp32;
  // What the caller does with the model: text (generate, score, train: refuses an encoder),
  // embeddings (refuses a model without pooling), or anything (export, info).
  enum class Use { kText, kEmbed, kAny };
  Use use = Use::kText;
};

// `path` is a GGUF file, or a Hugging Face model: a directory with config.json, tokenizer.json
// (tokenizer_config.json optional) and model.safetensors or model.safetensors.index.json with
// its shards, or one of those .safetensors / index files inside such a directory.
Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt = {});

// The tokenizer of what load_model takes, without reading config or weights: a GGUF's
// tokenizer keys (any GGUF with them, one that holds only a tokenizer too), or a Hugging Face
// model's tokenizer.json (+ tokenizer_config.json) in its directory (a directory with only those
// will do).
Expected<tokenizer::BpeTokenizer> load_model_tokenizer(const std::string& path);

// Whether load_model takes `path` as a Hugging Face model (a directory, .safetensors or .json).
bool is_hf_model_path(const std::string& path);
// The parts of a Hugging Face model before any weight is read: config, weight map, tensors.
struct HfModelInfo {
  std::string dir;         // the directory holding config.json and the tokenizer files
  std::string model_type;  // config.json's
  ModelConfig config;
  WeightMap weights;
  std::shared_ptr<const io::SafetensorsModel> tensors;
};
Expected<HfModelInfo> read_hf_model(const std::string& path);
// The ModelConfig of a GGUF of any supported architecture (general.architecture decides).
Expected<ModelConfig> config_of(const io::GgufFile& f);
// Where a GGUF of general.architecture `arch` keeps each parameter (model/weights.h).
WeightMap weights_of(const std::string& arch, const ModelConfig& c);

// Writes `model` as a GGUF of the standard architecture `arch` (an export target of the table in
// model/architectures/architecture.h: llama, gpt2; its `exportable` says which configs
// qualify), fp32 weights, with the tokenizer, so that
// llama.cpp and other GGUF readers run it; `longctx quantize` converts it further. Our own
// byte-class pre-tokenizer ("longctx") is written as llama.cpp's "gpt-2", which splits ASCII text the same
// way (text outside ASCII may split differently in other engines). Atomic, like checkpoints.
Status export_model(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok,
                    const std::string& arch);

}  // namespace longctx::model
