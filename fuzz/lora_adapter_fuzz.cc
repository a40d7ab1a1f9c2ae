// libFuzzer target for applying LoRA adapter files (model::Model::add_adapter) to a small model:
// any bytes must parse and apply, or fail with one clear line and leave the model without the
// adapter; never crash, leak or read out of bounds. Seeds: fuzz/corpus/lora/ (adapters for
// this model, written by fuzz/make_lora_seeds.py).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

#include "io/gguf.h"
#include "model/model.h"

namespace {

longctx::model::Model& fuzz_model() {
  static std::unique_ptr<longctx::model::Model> m = [] {
    longctx::model::ModelConfig c;
    c.vocab_size = 61;
    c.model_dim = 32;
    c.ctx = 16;
    c.set_uniform_layers(2, longctx::model::LayerConfig{4, 2, 8, 48});
    auto model = std::make_unique<longctx::model::Model>(c);
    longctx::Rng rng(1);
    model->init(rng);
    return model;
  }();
  return *m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto f = longctx::io::GgufFile::from_bytes(std::vector<uint8_t>(data, data + size));
  if (!f.ok()) return 0;  // the GGUF reader has its own target
  // A fresh copy each time: an adapter that applies must not pile up.
  longctx::model::Model& base = fuzz_model();
  auto m = base.with_config(base.config());
  if (!m.ok()) std::abort();
  const int before = (*m)->adapter_count();
  longctx::Status s = (*m)->add_adapter(*f, 0.5f);
  if (!s.ok()) {
    const std::string msg = s.message();
    if (msg.empty() || msg.find('\n') != std::string::npos) std::abort();  // one clear line
    if ((*m)->adapter_count() != before) std::abort();                    // nothing applied
    return 0;
  }
  // Applied: a forward pass runs over it.
  longctx::ThreadPool pool(1);
  longctx::Arena arena;
  const int32_t tokens[4] = {1, 2, 3, 4};
  std::vector<float> logits(4 * 61);
  (*m)->forward_logits(pool, arena, tokens, 1, 4, logits.data());
  return 0;
}
