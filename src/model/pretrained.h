// Loading any model file longctx runs: its own checkpoints (general.architecture "longctx") and
// pretrained GGUF models of the architectures in model/architectures/, with the tokenizer stored
// in the file. By default the matrices stay in the file's tensor types and are read in place
// (Model::map_matrices); `keep_quantized = false` dequantizes every weight to fp32 instead.
#pragma once
#include <string>

#include "core/status.h"
#include "model/checkpoint.h"

namespace longctx::model {

struct LoadOptions {
  int ctx = 0;                // context to build the model for; 0: the one it was trained with
  bool keep_quantized = true;  // matrices read in place in their file type (inference only)
};

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt = {});
// The ModelConfig of a GGUF of any supported architecture (general.architecture decides).
Expected<ModelConfig> config_of(const io::GgufFile& f);

// Writes `model` as a GGUF of the standard architecture `arch` (only "llama" so far:
// arch::llama_exportable says which configs qualify), fp32 weights, with the tokenizer, so that
// llama.cpp and other GGUF readers run it; `longctx quantize` converts it further. Our own
// byte-class pre-tokenizer ("longctx") is written as llama.cpp's "gpt-2", which splits ASCII text the same
// way (text outside ASCII may split differently in other engines). Atomic, like checkpoints.
Status export_model(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok,
                    const std::string& arch);

}  // namespace longctx::model
