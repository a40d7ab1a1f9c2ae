// PreTokenizer: the regex pre-tokenizers of real models, by their GGUF tokenizer.ggml.pre name.
// The pattern lists are the ones llama.cpp (src/llama-vocab.cpp) and the models' Hugging Face
// tokenizer.json files use; they are matched with PCRE2 (UTF-8, Unicode properties, JIT).
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer {
namespace {

// GPT-2's pattern, as HF's ByteLevel pre-tokenizer writes it (use_regex = true).
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Llama 3 (tiktoken cl100k style); the contractions are case-insensitive, as in the model's
// tokenizer.json (llama.cpp spells them '[sS]... because std::regex lacks (?i:); PCRE2 has it).
constexpr const char* kLlama3 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2: Llama 3's pattern with single digits.
constexpr const char* kQwen2 =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Spec {
  std::vector<const char*> names;
  std::vector<const char*> patterns;  // applied in order
  bool ignore_merges = false;
};

const std::vector<Spec>& specs() {
  static const std::vector<Spec> s = {
      // llama.cpp's fallback for a gpt2 vocabulary without a known pre-tokenizer.
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", "[0-9][0-9][0-9]"}},
      {{"gpt2", "gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo", "jais"}, {kGpt2}},
      {{"llama3", "llama-v3", "llama-bpe", "falcon3"}, {kLlama3}, true},
      {{"dbrx", "smaug-bpe"}, {kLlama3}},
      {{"qwen2", "stablelm2", "megrez"}, {kQwen2}},
      // HF: Sequence[Digits(individual_digits = true), ByteLevel(use_regex = true)].
      {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"},
       {R"(\p{N})", kGpt2}},
  };
  return s;
}

// HF matches with Oniguruma, whose \s is Unicode's White_Space property; PCRE2's \s adds U+180E
// (a space before Unicode 6.3). Spell the property out, inside classes and out.
std::string white_space_as_property(const char* pattern) {
  std::string out;
  for (const char* p = pattern; *p; ++p) {
    if (p[0] == '\\' && p[1] != '\0') {
      if (p[1] == 's') {
        out += "\\p{White_Space}";
      } else if (p[1] == 'S') {
        out += "\\P{White_Space}";
      } else {
        out += p[0];
        out += p[1];
      }
      ++p;
    } else {
      out += *p;
    }
  }
  return out;
}

struct CodeDeleter {
  void operator()(pcre2_code* c) const { pcre2_code_free(c); }
};
struct MatchDataDeleter {
  void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
using MatchData = std::unique_ptr<pcre2_match_data, MatchDataDeleter>;

}  // namespace

struct PreTokenizer::Regexes {
  std::vector<std::unique_ptr<pcre2_code, CodeDeleter>> codes;

  // Splits text[begin, end) with pattern `level` and hands every piece to the next level.
  void split(std::string_view text, size_t level, std::vector<MatchData>& md,
             const std::function<void(std::string_view)>& fn) const {
    if (level == codes.size()) {
      fn(text);
      return;
    }
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    const size_t n = text.size();
    size_t pos = 0;
    while (pos < n) {
      int rc = pcre2_match(codes[level].get(), subject, n, pos, 0, md[level].get(), nullptr);
      if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        // A resource limit of the JIT (its stack); the interpreter keeps its state on the heap.
        rc = pcre2_match(codes[level].get(), subject, n, pos, PCRE2_NO_JIT, md[level].get(),
                         nullptr);
      }
      if (rc < 0) {
        // No match (or a limit even the interpreter hit, which these patterns never reach on
        // any input we have tried): the rest is one gap piece, so the bytes still round-trip.
        split(text.substr(pos), level + 1, md, fn);
        return;
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md[level].get());
      const size_t begin = ov[0], end = ov[1];
      CHECK_MSG(begin >= pos && end > begin && end <= n, "pre-tokenizer pattern matched empty");
      if (begin > pos) split(text.substr(pos, begin - pos), level + 1, md, fn);
      split(text.substr(begin, end - begin), level + 1, md, fn);
      pos = end;
    }
  }
};

std::vector<std::string> PreTokenizer::names() {
  std::vector<std::string> out = {"longctx"};
  for (const Spec& s : specs())
    for (const char* n : s.names) out.emplace_back(n);
  return out;
}

Expected<PreTokenizer::Definition> PreTokenizer::definition(std::string_view name) {
  if (name == "longctx") return Definition{};
  for (const Spec& s : specs()) {
    for (const char* n : s.names) {
      if (name == n) return Definition{{s.patterns.begin(), s.patterns.end()}, s.ignore_merges};
    }
  }
  return Status::Error("unknown pre-tokenizer '" + std::string(name) + "'");
}

Expected<PreTokenizer> PreTokenizer::by_name(std::string_view name) {
  PreTokenizer t;
  t.name_ = std::string(name);
  if (name == "longctx") return t;
  const Spec* spec = nullptr;
  for (const Spec& s : specs())
    for (const char* n : s.names)
      if (name == n) spec = &s;
  if (spec == nullptr) {
    std::string known;
    for (const std::string& n : names()) known += (known.empty() ? "" : ", ") + n;
    return Status::Error("unknown pre-tokenizer '" + std::string(name) + "' (known: " + known +
                         ")");
  }
  auto regexes = std::make_shared<Regexes>();
  for (const char* pattern : spec->patterns) {
    const std::string p = white_space_as_property(pattern);
    int err = 0;
    PCRE2_SIZE err_offset = 0;
    pcre2_code* code =
        pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.c_str()), p.size(),
                      PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      // Our own constant patterns: failing to compile them is a bug (or a PCRE2 too old).
      return Status::Error("pre-tokenizer '" + t.name_ + "': PCRE2 rejects /" + p + "/ at offset " +
                           std::to_string(err_offset) + ": " + reinterpret_cast<char*>(msg));
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // where JIT is unavailable pcre2_match interprets
    regexes->codes.emplace_back(code);
  }
  t.regexes_ = std::move(regexes);
  t.ignore_merges_ = spec->ignore_merges;
  return t;
}

void PreTokenizer::split(std::string_view text,
                         const std::function<void(std::string_view)>& fn) const {
  if (!regexes_) {
    for_each_piece(text, fn);
    return;
  }
  std::vector<MatchData> md;
  for (const auto& code : regexes_->codes) {
    md.emplace_back(pcre2_match_data_create_from_pattern(code.get(), nullptr));
    CHECK_MSG(md.back() != nullptr, "out of memory");
  }
  regexes_->split(text, 0, md, fn);
}

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  split(text, [&](std::string_view piece) { pieces.push_back(piece); });
  return pieces;
}

}  // namespace longctx::tokenizer
