// Loading any model file longctx runs: its own checkpoints (general.architecture "longctx") and
// pretrained GGUF models of the architectures in model/architectures/ (weights of any supported
// tensor type, dequantized to fp32 on load), with the tokenizer stored in the file.
#pragma once
#include <string>

#include "core/status.h"
#include "model/checkpoint.h"

namespace longctx::model {

struct LoadOptions {
  int ctx = 0;  // context to build the model for; 0: the one it was trained with
};

Expected<LoadedModel> load_model(const std::string& path, const LoadOptions& opt = {});
// The ModelConfig of a GGUF of any supported architecture (general.architecture decides).
Expected<ModelConfig> config_of(const io::GgufFile& f);

}  // namespace longctx::model
