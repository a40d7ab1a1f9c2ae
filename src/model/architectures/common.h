// Pieces the architecture files share: reading a size key of a GGUF, the check that a longctx
// config has the one-shape, causal attention + feed-forward layers a standard architecture file
// describes, and writing a model's tensors under their own names.
#pragma once
#include <string>

#include "core/status.h"
#include "io/gguf.h"
#include "model/config.h"

namespace longctx::model {
class Model;
}

namespace longctx::model::arch {

// An unsigned key in [1, 2^24] (a dimension, count or length), as an int.
Expected<int> gguf_size_key(const io::GgufFile& f, const std::string& key);

// Every layer attention then feed-forward (the default blocks), causal over every key, with
// layer 0's heads, kv_heads, head_dim and ff_dim, and heads * head_dim == model_dim. The error
// reads "not a <arch> model: ..." and names the layer.
Status check_uniform_causal(const ModelConfig& c, const std::string& arch);

// Every tensor of m's layout under its longctx (GGUF llama-style) name: F32, or a matrix read in
// place in its stored type (model::add_model_tensors).
Status write_tensors_as_named(io::GgufWriter& w, const Model& m);

}  // namespace longctx::model::arch
