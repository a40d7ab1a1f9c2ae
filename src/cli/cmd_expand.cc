// longctx expand -m IN -o OUT (--add N | --every K) [--type T]
// Block expansion (LLaMA Pro, model/expand.h): after each group of K layers, a copy of the
// group's last layer whose residual branches end in zeros, so OUT computes what IN computes.
// IN is a longctx checkpoint or a GGUF of a pretrained architecture (its tensors are copied in
// their types; the added layers' matrices become F32 or --type). Train the copies with
// `longctx train --init OUT --train-only new`.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/expand.h"
#include "model/quantize_gguf.h"

namespace longctx::cli {

void register_expand(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("expand", "Add identity-initialised copies of layers (LLaMA Pro block expansion)");
  struct Opts {
    std::string in, out, type = "f32";
    int add = 0, every = 0;
  };
  auto o = std::make_shared<Opts>();
  c->add_option("-m,--model", o->in, "Model to expand: a longctx checkpoint or a GGUF (llama, ...)")->required();
  c->add_option("-o,--output", o->out, "Expanded model (GGUF, written atomically)")->required();
  auto* add = c->add_option("--add", o->add, "Layers to add, one after each of N equal groups");
  auto* every = c->add_option("--every", o->every, "Add one layer after every K layers");
  c->add_option("--type", o->type, "Type of the added layers' matrices in a GGUF model: f32 (default), f16, q8_0, ...");
  c->callback([o, add, every, &cmds] {
    const bool add_given = add->count() > 0, every_given = every->count() > 0;
    cmds.run = [o, add_given, every_given] {
      if ((add_given && o->add < 1) || (every_given && o->every < 1))
        return fail(std::string(add_given && o->add < 1 ? "--add" : "--every") + " takes a count >= 1");
      auto type = model::parse_output_type(o->type);
      if (!type.ok()) return fail(type.status().Wrap("--type"));
      if (same_file(o->in, o->out))
        return fail("the output '" + o->out + "' is the input: expand writes a new file");
      model::ExpandFileOptions opt;
      opt.add = o->add;
      opt.every = o->every;
      opt.new_type = *type;
      auto st = model::expand_file(o->in, o->out, opt);
      if (!st.ok()) return fail(st.status());
      std::printf("expand: %s -> %s: %d layers -> %d (%d added, %.2fM parameters); train them with "
                  "`longctx train --init %s --train-only new`\n",
                  o->in.c_str(), o->out.c_str(), st->layers_before, st->layers_after,
                  st->layers_after - st->layers_before, st->params_added / 1e6, o->out.c_str());
      return 0;
    };
  });
}

}  // namespace longctx::cli
