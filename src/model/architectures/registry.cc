// The architecture table: one line per file under model/architectures/.
#include "model/architectures/architecture.h"

namespace longctx::model::arch {

extern const Architecture kLongctxArchitecture;  // longctx.cc
extern const Architecture kLlamaArchitecture;    // llama.cc
extern const Architecture kGpt2Architecture;     // gpt2.cc
extern const Architecture kBertArchitecture;     // bert.cc

const std::vector<const Architecture*>& architectures() {
  static const std::vector<const Architecture*> table = {
      &kLongctxArchitecture,
      &kLlamaArchitecture,
      &kGpt2Architecture,
      &kBertArchitecture,
  };
  return table;
}

namespace {

template <class Has>
std::string names(Has has) {
  std::string out;
  for (const Architecture* a : architectures()) {
    std::vector<std::string> ns = has(*a);
    for (const auto& n : ns) out += (out.empty() ? "" : ", ") + n;
  }
  return out;
}

}  // namespace

Expected<const Architecture*> find_gguf_architecture(const std::string& name) {
  for (const Architecture* a : architectures())
    if (a->gguf_config && a->name == name) return a;
  return Status::Error("architecture '" + name + "' is not supported (supported: " +
                       names([](const Architecture& a) {
                         return a.gguf_config ? std::vector<std::string>{a.name} : std::vector<std::string>{};
                       }) +
                       ")");
}

Expected<const Architecture*> find_hf_architecture(const std::string& model_type) {
  for (const Architecture* a : architectures())
    for (const auto& t : a->hf_model_types)
      if (t == model_type) return a;
  return Status::Error("is '" + model_type + "' (supported: " +
                       names([](const Architecture& a) { return a.hf_model_types; }) + ")");
}

Expected<const Architecture*> find_export_architecture(const std::string& name) {
  for (const Architecture* a : architectures())
    if (a->write && a->name == name) return a;
  return Status::Error("architecture '" + name + "' is not an export target (supported: " +
                       names([](const Architecture& a) {
                         return a.write ? std::vector<std::string>{a.name} : std::vector<std::string>{};
                       }) +
                       ")");
}

}  // namespace longctx::model::arch
