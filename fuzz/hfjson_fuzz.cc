// libFuzzer target for the Hugging Face JSON files longctx reads: the bytes are tried as a
// tokenizer.json with an optional tokenizer_config.json after a "\n#config#\n" line
// (tokenizer::vocab_from_hf_json; a vocabulary that loads is built and used), and as a
// config.json for each architecture of the table (model/architectures/architecture.h) that reads
// one. Each must return a Status,
// never crash or throw.
// Seeds: fuzz/corpus/hfjson/ (the tokenizer fixtures of tests/tokenizer/golden/hf_json/ and
// config.json files of small transformers models).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "model/architectures/architecture.h"
#include "model/architectures/hf_config.h"
#include "tokenizer/bpe.h"
#include "tokenizer/hf_json.h"

namespace {
constexpr std::string_view kSeparator = "\n#config#\n";
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace longctx;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  // "TOKENIZER_JSON\n#config#\nTOKENIZER_CONFIG_JSON", or the whole input as tokenizer.json.
  const size_t sep = text.find(kSeparator);
  const std::string_view tok_json = text.substr(0, sep);
  const std::string_view tok_config = sep == std::string_view::npos ? "" : text.substr(sep + kSeparator.size());
  auto v = tokenizer::vocab_from_hf_json(tok_json, tok_config);
  if (v.ok()) {
    auto tok = tokenizer::BpeTokenizer::from_gguf(*v);
    if (tok.ok()) {
      auto ids = tok->encode("Hello world 123, naïve café <|endoftext|>");
      (void)tok->decode(ids);
    }
  }
  auto cfg = model::arch::HfConfig::parse(std::string(text), "config.json");
  if (cfg.ok()) {
    for (const model::arch::Architecture* a : model::arch::architectures())
      if (a->hf_config) (void)a->hf_config(*cfg);
  }
  return 0;
}
