// libFuzzer target for the tokenizers: any bytes must encode without crashing, and decode must
// give them back, for our own byte-level BPE under each pre-tokenizer pattern list (PCRE2 over
// invalid UTF-8 included), with special-token parsing on and off, and for a SentencePiece-style
// ("llama") vocabulary with byte fallback. The vocabularies are small and built here (no model
// file). Seeds: fuzz/corpus/tokenizer/.
//   CC=clang CXX=clang++ cmake -DLONGCTX_FUZZ=ON ...; build-fuzz/fuzz/tokenizer_fuzz DIR
// or alone: clang++ -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
//   src/tokenizer/*.cc fuzz/tokenizer_fuzz.cc -lpcre2-8 -o /tmp/tokenizer_fuzz
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe.h"

namespace {

using longctx::tokenizer::BpeTokenizer;
using longctx::tokenizer::GgufVocab;
using longctx::tokenizer::TokenType;

constexpr const char* kTrainText =
    "Hello world, hello there! It's 2024 and we'll tokenize naïve café text. "
    "Привет мир. Καλημέρα. 你好世界。 مرحبا. नमस्ते. 👍🏽 👨‍👩‍👧 "
    "🇫🇷\n\n"
    "def f(x):\n    return x ** 2  # 12345\n\t<|im_start|>user\nHi<|im_end|>\n";

struct Vocabs {
  std::vector<BpeTokenizer> byte_level;  // one per pre-tokenizer name
  std::vector<BpeTokenizer> spm;
};

void die_unless(bool ok) {
  if (!ok) std::abort();
}

Vocabs build() {
  Vocabs v;
  longctx::tokenizer::TrainOptions opt;
  opt.vocab_size = 600;
  auto trained = BpeTokenizer::train(kTrainText, opt);
  die_unless(trained.ok());
  GgufVocab base = trained->gguf_vocab();
  base.tokens.push_back("<|im_start|>");
  base.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  base.tokens.push_back("<|im_end|>");
  base.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  base.tokens.push_back("<tool call>");
  base.token_types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  // One name per distinct pattern list (PreTokenizer::names() has aliases).
  for (const char* name : {"longctx", "default", "gpt2", "llama3", "dbrx", "qwen2", "smollm"}) {
    GgufVocab g = base;
    g.pre = name;
    auto t = BpeTokenizer::from_gguf(g);
    die_unless(t.ok());
    v.byte_level.push_back(std::move(t.value()));
  }
  // SentencePiece style: <unk> <s> </s>, the 256 byte tokens, characters and a few pieces.
  GgufVocab s;
  s.model = "llama";
  s.tokens = {"<unk>", "<s>", "</s>"};
  s.token_types = {2, 3, 3};
  const char hex[] = "0123456789ABCDEF";
  for (int b = 0; b < 256; ++b) {
    s.tokens.push_back(std::string("<0x") + hex[b >> 4] + hex[b & 15] + ">");
    s.token_types.push_back(static_cast<int32_t>(TokenType::kByte));
  }
  for (const char* p : {"\xe2\x96\x81",
                        "a",
                        "b",
                        "c",
                        "e",
                        "h",
                        "l",
                        "o",
                        "\xc3\xa9",
                        "\xe4\xbd\xa0",
                        "\xe2\x96\x81h",
                        "el",
                        "ll",
                        "\xe2\x96\x81hel",
                        "lo",
                        "\xe2\x96\x81hello",
                        "ab",
                        "abc",
                        "\xe2\x96\x81\xe2\x96\x81",
                        "\xe4\xbd\xa0\xe4\xbd\xa0"}) {
    s.tokens.push_back(p);
    s.token_types.push_back(static_cast<int32_t>(TokenType::kNormal));
  }
  for (size_t i = 0; i < s.tokens.size(); ++i) s.scores.push_back(-static_cast<float>(i % 7));
  s.unk = 0, s.bos = 1, s.eos = 2;
  for (bool prefix : {true, false}) {
    s.add_space_prefix = prefix;
    auto t = BpeTokenizer::from_gguf(s);
    die_unless(t.ok());
    v.spm.push_back(std::move(t.value()));
  }
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Vocabs v = build();
  if (size > 4096) return 0;
  const std::string x(reinterpret_cast<const char*>(data), size);
  for (const BpeTokenizer& t : v.byte_level) {
    const std::vector<int32_t> ids = t.encode(x);
    for (int32_t id : ids) die_unless(id >= 0 && id < t.vocab_size() && !t.is_special(id));
    die_unless(t.decode(ids) == x);
    die_unless(t.decode(t.encode_special(x), /*render_special=*/true) == x);
  }
  // SentencePiece writes a space as U+2581 '▁', so a '▁' in the input decodes as a space (as in
  // HF); everything else comes back as it was.
  std::string spaced;
  for (size_t i = 0; i < x.size(); ++i) {
    if (x.compare(i, 3, "\xe2\x96\x81") == 0) {
      spaced += ' ';
      i += 2;
    } else {
      spaced += x[i];
    }
  }
  for (const BpeTokenizer& t : v.spm) {
    const std::vector<int32_t> ids = t.encode(x);
    for (int32_t id : ids) die_unless(id > 2 && id < t.vocab_size());  // never unk, <s>, </s>
    die_unless(t.decode(ids) == spaced);
  }
  return 0;
}
