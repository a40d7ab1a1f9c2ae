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

}  // namespace longctx::model
