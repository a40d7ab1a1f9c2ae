// longctx export CKPT OUT [--arch llama|gpt2] [--keep-types]
// Writes a longctx checkpoint (or any model longctx loads, e.g. a Hugging Face safetensors
// directory) as a GGUF of a standard architecture (fp32), so that llama.cpp and other GGUF
// readers run it; `longctx quantize OUT ... TYPE` converts it further. --keep-types (llama)
// copies matrices stored in a type llama.cpp reads (Q8_0, Q4_0, Q4_1, F16) as they are: a model
// fine-tuned on a quantized base keeps its frozen matrices' bytes.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/pretrained.h"

namespace longctx::cli {

void register_export(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("export", "Write a checkpoint or Hugging Face model as a llama / gpt2 GGUF (llama.cpp runs it)");
  struct Opts {
    std::string in, out, arch = "llama";
    bool keep_types = false;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("CKPT", o->in, "longctx checkpoint (or any model longctx loads)")->required();
  c->add_option("OUT", o->out, "Output GGUF (written atomically)")->required();
  c->add_option("--arch", o->arch, "Target architecture: llama, gpt2 or bert");
  c->add_flag("--keep-types", o->keep_types,
              "Copy matrices stored as Q8_0 / Q4_0 / Q4_1 / F16 as they are (llama; default: everything F32)");
  c->callback([o, &cmds] {
    cmds.run = [o] {
      model::LoadOptions lo;
      lo.keep_quantized = o->keep_types;
      lo.use = model::LoadOptions::Use::kAny;
      auto loaded = model::load_model(o->in, lo);
      if (!loaded.ok()) return fail(loaded.status());
      Status st = model::export_model(o->out, *loaded->model, loaded->tokenizer, o->arch);
      if (!st.ok()) return fail(st.Wrap("export '" + o->in + "'"));
      std::printf("export: %s -> %s (%s, %lld parameters, %s)\n", o->in.c_str(), o->out.c_str(), o->arch.c_str(),
                  static_cast<long long>(loaded->model->n_params()),
                  loaded->model->has_mapped_weights() ? "matrices in their stored types" : "F32");
      return 0;
    };
  });
}

}  // namespace longctx::cli
