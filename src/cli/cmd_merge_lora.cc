// longctx merge-lora -m BASE --lora A [--lora B ...] [--lora-scale S ...] -o OUT [--type q8_0]
// Writes BASE with its LoRA adapters merged into the weights (W += scale * alpha / rank * B A),
// in fp32: a longctx checkpoint stays one; a GGUF of a pretrained architecture (llama) is written
// as that architecture, so llama.cpp runs it without --lora. --type then converts its matrices
// (`longctx quantize` rules). Written atomically: on any error no OUT.
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/gguf.h"
#include "model/checkpoint.h"
#include "model/pretrained.h"
#include "model/quantize_gguf.h"

namespace longctx::cli {

void register_merge_lora(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("merge-lora", "Merge LoRA adapters into a model's weights");
  struct Opts {
    std::string in, out, type = "f32";
    LoraFlags lora;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("-m,--model", o->in, "Base model: a longctx checkpoint, a GGUF (llama) or a Hugging Face model")->required();
  c->add_option("-o,--output", o->out, "Merged model (GGUF)")->required();
  c->add_option("--type", o->type, "Type of the merged matrices: f32 (default), f16, bf16, q8_0, q4_0, q4_1");
  add_lora_flags(c, o->lora);
  c->callback([o, &cmds] {
    cmds.run = [o] {
      if (o->lora.files.empty()) return fail("give the adapter to merge with --lora");
      auto type = model::parse_output_type(o->type);
      if (!type.ok()) return fail(type.status().Wrap("--type"));
      if (same_file(o->in, o->out))
        return fail("the output '" + o->out + "' is the input: merge-lora writes a new file");
      model::LoadOptions lo;
      lo.keep_quantized = false;
      auto loaded = model::load_model(o->in, lo);
      if (!loaded.ok()) return fail(loaded.status());
      if (Status s = apply_lora_flags(o->lora, *loaded->model); !s.ok()) return fail(s);
      if (Status s = loaded->model->merge_adapters(); !s.ok()) return fail(s);
      std::string arch = "llama";
      if (auto g = io::GgufFile::open(o->in); g.ok()) {
        auto a = g->get_string("general.architecture");
        if (a.ok()) arch = *a;
      }
      const bool quantize = *type != kF32;
      const std::string fp32_path = quantize ? o->out + ".f32.tmp" : o->out;
      Status st = arch == "longctx" ? model::save_checkpoint(fp32_path, *loaded->model, loaded->tokenizer)
                                    : model::export_model(fp32_path, *loaded->model, loaded->tokenizer, arch);
      if (!st.ok()) return fail(st.Wrap("merge-lora"));
      if (quantize) {
        auto q = model::quantize_gguf(fp32_path, o->out, *type, {});
        std::error_code ec;
        std::filesystem::remove(fp32_path, ec);
        if (!q.ok()) return fail(q.status().Wrap("merge-lora"));
      }
      std::printf("merge-lora: %s + %zu adapter(s) -> %s (%s, %s)\n", o->in.c_str(), o->lora.files.size(),
                  o->out.c_str(), arch.c_str(), o->type.c_str());
      return 0;
    };
  });
}

}  // namespace longctx::cli
