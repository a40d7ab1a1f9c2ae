// Checkpoints are GGUF files: the model config (longctx.* keys), the tokenizer (GGUF's gpt2
// tokenizer keys) and the fp32 weights under their llama-style tensor names. Training state
// (AdamW moments, step, RNG) goes in a sibling file, see train/train_state.h.
#pragma once
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "model/model.h"
#include "model/weights.h"
#include "tokenizer/bpe.h"

namespace longctx::model {

struct LoadedModel {
  std::unique_ptr<Model> model;
  tokenizer::BpeTokenizer tokenizer;
};

// Writes atomically (temp file, fsync, rename). Tensors held in fp32 are written F32; matrices
// read in place (Model::map_matrices: the frozen ones of a fine-tuned model) in their types.
Status save_checkpoint(const std::string& path, const Model& model, const tokenizer::BpeTokenizer& tok);
Expected<LoadedModel> load_checkpoint(const std::string& path);

// A model of config `cfg` with tokenizer `tok` and the weights of `store` as `map` locates them
// (model/weights.h). With map_matrices the matrices stay in their stored types, read in place
// (Model::map_matrices), but for those named in `fp32`; otherwise everything is converted to
// fp32 (training everything, reference checks).
Expected<LoadedModel> build_loaded(const TensorStore& store, const WeightMap& map, tokenizer::BpeTokenizer tok,
                                   const ModelConfig& cfg, bool map_matrices, const std::set<std::string>& fp32 = {});

// The model's tensors as save_checkpoint writes them (the data stays the model's: keep it alive
// until the writer has written).
Status add_model_tensors(io::GgufWriter& w, const Model& model);

// Tokenizer keys alone (what `longctx tokenizer train` writes) or inside any checkpoint.
void write_tokenizer_keys(io::GgufWriter& w, const tokenizer::BpeTokenizer& tok);
Status save_tokenizer(const std::string& path, const tokenizer::BpeTokenizer& tok);
Expected<tokenizer::BpeTokenizer> read_tokenizer(const io::GgufFile& f);
Expected<tokenizer::BpeTokenizer> load_tokenizer(const std::string& path);

// Config <-> GGUF metadata.
void write_config_keys(io::GgufWriter& w, const ModelConfig& c);
Expected<ModelConfig> read_config(const io::GgufFile& f);

}  // namespace longctx::model
