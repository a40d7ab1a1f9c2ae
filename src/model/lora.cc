#include "model/lora.h"

#include <cstring>

#include "io/gguf.h"

namespace longctx::model {
namespace {
bool is_lora_name(const std::string& n) {
  auto ends = [&](const char* s) {
    const size_t k = std::strlen(s);
    return n.size() > k && n.compare(n.size() - k, k, s) == 0;
  };
  return ends(".lora_a") || ends(".lora_b");
}
}  // namespace

Status save_lora_adapter(const std::string& path, const Model& m, const std::string& base_arch) {
  const layers::LoraSettings& l = m.config().lora;
  if (l.rank < 1) return Status::Error("the model has no LoRA tensors");
  io::GgufWriter w;
  w.set_string("general.type", "adapter");
  w.set_string("general.architecture", base_arch);
  w.set_string("adapter.type", "lora");
  w.set_f32("adapter.lora.alpha", l.alpha);
  w.set_string("longctx.lora", format_lora(l));  // how it was trained (informative)
  int n = 0;
  for (const ParamTensor& t : m.layout().tensors()) {
    if (!is_lora_name(t.name)) continue;
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    LONGCTX_RETURN_IF_ERROR(w.add_tensor(t.name, dims, kF32, m.params() + t.offset, t.numel * sizeof(float)));
    ++n;
  }
  if (n == 0) return Status::Error("the LoRA targets match no matrix of the model");
  return w.write(path);
}

Status load_lora_tensors(const std::string& path, Model& m) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  auto fail = [&](const std::string& s) { return Status::Error("adapter '" + path + "': " + s); };
  for (const ParamTensor& t : m.layout().tensors()) {
    if (!is_lora_name(t.name)) continue;
    const io::GgufTensorInfo* g = f->find_tensor(t.name);
    if (!g) return fail("tensor '" + t.name + "' is missing (trained with other --lora settings?)");
    std::vector<int64_t> dims(t.shape.rbegin(), t.shape.rend());
    if (g->type != kF32 || g->dims != dims) return fail("tensor '" + t.name + "' is not F32 of the model's shape");
    std::memcpy(m.params() + t.offset, g->data, t.numel * sizeof(float));
  }
  return Status::Ok();
}

Status apply_adapter_file(Model& m, const std::string& path, float scale) {
  auto f = io::GgufFile::open(path);
  if (!f.ok()) return f.status();
  Status s = m.add_adapter(*f, scale);
  if (!s.ok()) return s.Wrap("adapter '" + path + "'");
  return Status::Ok();
}

}  // namespace longctx::model
