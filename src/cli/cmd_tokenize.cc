// longctx tokenize -m MODEL (-p TEXT | -f FILE) [--pieces] [--json] [--no-special]
// The token ids of a text under a model's tokenizer, like llama.cpp's llama-tokenize. By default
// as llama-tokenize and Hugging Face's encode() do: BOS first when the model asks for it
// (tokenizer.ggml.add_bos_token, or tokenizer_config.json / the post-processor), EOS last likewise
// (tokenizer.ggml.add_eos_token: BERT's [CLS] ... [SEP]), and the text of
// control tokens (<|im_start|>, <s>) parsed to those tokens. --no-special does neither
// (llama-tokenize --no-bos --no-parse-special; HF's encode(add_special_tokens=False) with
// encode_special_tokens = True): control-token text is encoded as plain text. User-defined added
// tokens are matched either way, as both do. Only the tokenizer is read, not the weights.
//
// Output: the ids comma-separated on one line (what detokenize --ids and logits --tokens take);
// --pieces: one line per token, "ID 'PIECE'" (control tokens as their text; newline, tab, quote,
// backslash, other control characters and bytes that are not UTF-8 escaped); --json: one object
// {"n_tokens": N, "ids": [...]} plus, with --pieces, "pieces": [...] (bytes that are not UTF-8
// become U+FFFD).
#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/common.h"
#include "io/atomic_file.h"
#include "model/pretrained.h"

namespace longctx::cli {
namespace {

struct TokenizeFlags {
  std::string model, prompt, file;
  bool prompt_given = false, file_given = false, pieces = false, json = false, no_special = false;
};

// The length of the UTF-8 sequence starting at s[i] (1 to 4), or 0 where the bytes there are
// not one (a stray continuation byte, a truncated or overlong sequence, a surrogate).
size_t utf8_length(const std::string& s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
  if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F;
  else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F;
  else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07;
  else return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (b(i + k) & 0x3F);
  }
  const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// A token's bytes for a terminal: valid UTF-8 as it is, everything else escaped.
std::string escape_piece(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    const size_t n = utf8_length(s, i);
    if (c == '\n') out += "\\n";
    else if (c == '\t') out += "\\t";
    else if (c == '\r') out += "\\r";
    else if (c == '\\' || c == '\'') out += std::string("\\") + static_cast<char>(c);
    else if (n == 0 || c < 0x20 || c == 0x7F) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    } else {
      out.append(s, i, n);
      i += n;
      continue;
    }
    ++i;
  }
  return out;
}

// What token `id` stands for: its bytes, or a control token's text.
std::string piece_of(const tokenizer::BpeTokenizer& tok, int32_t id) {
  const tokenizer::TokenType type = tok.token_type(id);
  if (type == tokenizer::TokenType::kControl || type == tokenizer::TokenType::kUnknown)
    return tok.decode(std::span<const int32_t>(&id, 1), true);
  return tok.token_bytes(id);
}

int run_tokenize(const TokenizeFlags& f) {
  if (f.prompt_given == f.file_given) return fail("tokenize: give exactly one of -p TEXT and -f FILE");
  std::string text = f.prompt;
  if (f.file_given) {
    auto read = io::read_file(f.file);
    if (!read.ok()) return fail(read.status().Wrap("tokenize -f"));
    text = std::move(*read);
  }
  auto tok = model::load_model_tokenizer(f.model);
  if (!tok.ok()) return fail(tok.status());
  std::vector<int32_t> ids;
  if (!f.no_special && tok->add_bos() && tok->bos_id() >= 0) ids.push_back(tok->bos_id());
  tok->encode_append(text, ids, !f.no_special);
  if (!f.no_special && tok->add_eos() && tok->eos_id() >= 0) ids.push_back(tok->eos_id());

  if (f.json) {
    nlohmann::json j = {{"n_tokens", ids.size()}, {"ids", ids}};
    if (f.pieces) {
      nlohmann::json pieces = nlohmann::json::array();
      for (int32_t id : ids) pieces.push_back(piece_of(*tok, id));
      j["pieces"] = std::move(pieces);
    }
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  } else if (f.pieces) {
    for (int32_t id : ids) std::printf("%d '%s'\n", id, escape_piece(piece_of(*tok, id)).c_str());
  } else {
    std::string line;
    for (size_t i = 0; i < ids.size(); ++i) line += (i ? "," : "") + std::to_string(ids[i]);
    std::printf("%s\n", line.c_str());
  }
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app, Commands& cmds) {
  auto* c = app.add_subcommand("tokenize", "Print the token ids of a text under a model's tokenizer");
  auto f = std::make_shared<TokenizeFlags>();
  c->add_option("-m,--model", f->model, "Model: GGUF, or a Hugging Face directory (only its tokenizer is read)")
      ->required();
  auto* prompt = c->add_option("-p,--prompt", f->prompt, "Text to tokenize");
  auto* file = c->add_option("-f,--file", f->file, "File whose whole content is tokenized (bytes as they are)");
  c->add_flag("--pieces", f->pieces, "Each id with the text it stands for");
  c->add_flag("--json", f->json, "One JSON object: n_tokens, ids (and pieces)");
  c->add_flag("--no-special", f->no_special,
              "Add no BOS/EOS and encode special-token text (<|im_start|>) as plain text");
  c->callback([f, prompt, file, &cmds] {
    f->prompt_given = prompt->count() > 0;
    f->file_given = file->count() > 0;
    cmds.run = [f] { return run_tokenize(*f); };
  });
}

}  // namespace longctx::cli
