// One table of the architectures longctx reads and writes. Each file under model/architectures/
// describes one (its GGUF and Hugging Face config readers, where its tensors are stored, whether
// and how a longctx model is written as one) and the table in registry.cc lists it; loading,
// `info` and `export` look architectures up here and never name one.
#pragma once
#include <string>
#include <vector>

#include "core/status.h"
#include "io/gguf.h"
#include "model/architectures/hf_config.h"
#include "model/config.h"
#include "model/weights.h"

namespace longctx::model {
class Model;
}

namespace longctx::model::arch {

struct Architecture {
  std::string name;                          // general.architecture of its GGUF files
  std::vector<std::string> hf_model_types;   // config.json model_type values it reads (may be none)
  Expected<ModelConfig> (*gguf_config)(const io::GgufFile& f) = nullptr;
  // Where its GGUF keeps each longctx parameter; null: under longctx's own names, as they are.
  WeightMap (*gguf_weights)(const ModelConfig& c) = nullptr;
  Expected<ModelConfig> (*hf_config)(const HfConfig& hf) = nullptr;
  WeightMap (*hf_weights)(const ModelConfig& c) = nullptr;
  // Export (null: not a target): whether a config is one of these (the error names the first
  // thing that is not), and writing its keys and the model's fp32 tensors. `keep` holds tensors
  // made on the way (fused ones) until the writer has written them.
  Status (*exportable)(const ModelConfig& c) = nullptr;
  Status (*write)(io::GgufWriter& w, const Model& m, std::vector<std::vector<float>>* keep) = nullptr;
};

const std::vector<const Architecture*>& architectures();
// By general.architecture / by config.json's model_type; errors list what is supported.
Expected<const Architecture*> find_gguf_architecture(const std::string& name);
Expected<const Architecture*> find_hf_architecture(const std::string& model_type);
Expected<const Architecture*> find_export_architecture(const std::string& name);

}  // namespace longctx::model::arch
