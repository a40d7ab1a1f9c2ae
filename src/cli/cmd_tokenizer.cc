// longctx tokenizer train --data corpus.txt --vocab-size 4096 -o tok.gguf
#include <chrono>
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/common.h"
#include "model/checkpoint.h"
#include "tokenizer/bpe.h"
#include "train/data.h"

namespace longctx::cli {

void register_tokenizer(CLI::App& app, Commands& cmds) {
  auto* tok = app.add_subcommand("tokenizer", "Byte-level BPE tokenizers");
  tok->require_subcommand(1);
  auto* tr = tok->add_subcommand("train", "Train a byte-level BPE vocabulary on a text file");
  struct Opts {
    std::string data, out;
    int vocab = 4096;
  };
  auto o = std::make_shared<Opts>();
  tr->add_option("--data", o->data, "Text corpus")->required();
  tr->add_option("--vocab-size", o->vocab, "Vocabulary size, including 256 bytes and 3 special tokens");
  tr->add_option("-o,--output", o->out, "Output tokenizer (GGUF)")->required();
  tr->callback([o, &cmds] {
    cmds.run = [o] {
      auto text = train::read_corpus(o->data);
      if (!text.ok()) return fail(text.status());
      // The tokenizer is trained on the training part only, so held-out text stays unseen.
      const std::string train_text = train::split_corpus(*text).train;
      tokenizer::TrainOptions topt;
      topt.vocab_size = o->vocab;
      const bool tty = stdout_is_tty();
      if (tty) {
        topt.progress = [](int done, int total) {
          std::printf("\rtokenizer: merge %d/%d", done, total);
          std::fflush(stdout);
        };
      }
      auto t0 = std::chrono::steady_clock::now();
      auto tok = tokenizer::BpeTokenizer::train(train_text, topt);
      if (!tok.ok()) return fail(tok.status());
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      Status st = model::save_tokenizer(o->out, *tok);
      if (!st.ok()) return fail(st);
      std::printf("%stokenizer: %d tokens trained on %zu bytes in %.1f s -> %s\n", tty ? "\r" : "", tok->vocab_size(),
                  train_text.size(), s, o->out.c_str());
      return 0;
    };
  });
}

}  // namespace longctx::cli
