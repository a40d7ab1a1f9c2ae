// LoRA adapters in llama.cpp's GGUF adapter layout, so that what longctx trains llama.cpp loads
// (`--lora FILE`) and the other way round:
//   general.type = "adapter", general.architecture = the base's ("llama" for SmolLM2; "longctx"
//   for our checkpoints), adapter.type = "lora", adapter.lora.alpha (f32);
//   per targeted matrix W [out, in] named N: "N.lora_a" of ggml dims [in, rank] (PyTorch
//   [rank, in]) and "N.lora_b" of ggml dims [rank, out] (PyTorch [out, rank]), F32.
// The update is W x + s B A x with s = alpha / rank (alpha 0: 1) times the user's scale.
// Training: Model::with_lora adds the tensors (only they train); applying files at run time:
// Model::add_adapter; merging into the weights: Model::merge_adapters (`longctx merge-lora`).
#pragma once

#include <string>

#include "core/status.h"
#include "model/model.h"

namespace longctx::model {

// Writes the LoRA tensors of a model made by Model::with_lora (atomically).
Status save_lora_adapter(const std::string& path, const Model& m, const std::string& base_arch);
// Reads an adapter saved by save_lora_adapter into such a model's LoRA tensors (resuming a
// run): every LoRA tensor of the model must be in the file with its shape, F32.
Status load_lora_tensors(const std::string& path, Model& m);
// Opens an adapter file and applies it to m (Model::add_adapter); errors name the file.
Status apply_adapter_file(Model& m, const std::string& path, float scale);

}  // namespace longctx::model
