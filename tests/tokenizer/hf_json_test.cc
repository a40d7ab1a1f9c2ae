// Hugging Face tokenizer.json loading (tokenizer/hf_json.h) against Hugging Face `tokenizers`:
// the fixtures of tests/tokenizer/make_hf_json_fixtures.py (golden/hf_json/<name>/: tokenizer.json,
// tokenizer_config.json, and hf_ids.json.gz, HF's ids for the strings of golden/smollm2_tokens.json
// and a few more) must load through load_hf_vocab -> BpeTokenizer::from_gguf and give HF's ids on
// every string, and decode(encode(s)) == s wherever HF's decode gives s back. Then bad input: each
// malformed file gives one error naming the problem, and no mutation of a valid file crashes.
#include "tokenizer/hf_json.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#ifdef LONGCTX_HAVE_ZLIB
#include <zlib.h>
#endif

#include "io/gguf.h"
#include "model/checkpoint.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

using Json = nlohmann::json;

const std::string kGolden = std::string(LONGCTX_SOURCE_DIR) + "/tests/tokenizer/golden/";
const std::string kFixtures = kGolden + "hf_json/";

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string escaped(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

#ifdef LONGCTX_HAVE_ZLIB
std::string read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return "";
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0) << path << ": gzread failed";
  gzclose(f);
  return out;
}
#endif

// ---------------------------------------------------------------------------------------------
// The fixtures against HF.

struct Loaded {
  GgufVocab vocab;
  std::optional<BpeTokenizer> tok;
};

Loaded load_fixture(const std::string& name) {
  Loaded l;
  Expected<GgufVocab> v = load_hf_vocab(kFixtures + name);
  EXPECT_TRUE(v.ok()) << v.status().message();
  if (!v.ok()) return l;
  l.vocab = v.value();
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(l.vocab);
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (t.ok()) l.tok.emplace(std::move(t.value()));
  return l;
}

// Compares every case of golden/hf_json/<name>/hf_ids.json.gz; returns the golden.
Json expect_hf_ids(const BpeTokenizer& tok, const std::string& name) {
#ifndef LONGCTX_HAVE_ZLIB
  ADD_FAILURE() << "built without zlib: cannot read " << name << "/hf_ids.json.gz";
  return Json();
#else
  const Json golden = Json::parse(read_gz(kFixtures + name + "/hf_ids.json.gz"));
  const Json strings = Json::parse(read_text(kGolden + "smollm2_tokens.json"))["cases"];
  const Json& cases = golden["cases"];
  EXPECT_GE(cases.size(), 2000u) << name;
  EXPECT_EQ(tok.vocab_size(), golden["vocab_size"].get<int>()) << name;
  int equal = 0, shown = 0, round_trips = 0, round_trip_checked = 0, from_strings = 0;
  for (const Json& c : cases) {
    std::string s;
    if (c.contains("c")) {
      s = strings.at(c["c"].get<size_t>())["s"].get<std::string>();
      ++from_strings;
    } else {
      s = c["s"].get<std::string>();
    }
    const bool special = c["special"].get<bool>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = special ? tok.encode_special(s) : tok.encode(s);
    if (got == want) {
      ++equal;
    } else if (shown++ < 5) {
      ADD_FAILURE() << name << ": ids differ from HF for '" << escaped(s) << "' (special " << special
                    << "): " << ::testing::PrintToString(got) << " vs HF " << ::testing::PrintToString(want);
    }
    if (c["rt"].get<bool>()) {
      ++round_trip_checked;
      const std::string back = tok.decode(got, /*render_special=*/true);
      if (back == s) {
        ++round_trips;
      } else if (shown++ < 5) {
        ADD_FAILURE() << name << ": decode(encode(s)) != s for '" << escaped(s) << "': '" << escaped(back) << "'";
      }
    }
  }
  std::printf("%s: %d of %zu cases (%d from smollm2_tokens.json) give HF's ids; %d of %d round-trip\n", name.c_str(),
              equal, cases.size(), from_strings, round_trips, round_trip_checked);
  EXPECT_EQ(equal, static_cast<int>(cases.size())) << name;
  EXPECT_EQ(round_trips, round_trip_checked) << name;
  return golden;
#endif
}

int32_t id_of(const GgufVocab& v, const std::string& text) {
  for (size_t i = 0; i < v.tokens.size(); ++i) {
    if (v.tokens[i] == text) return static_cast<int32_t>(i);
  }
  return -1;
}

TEST(HfJsonFixture, ByteLevelSmolLM) {
  Loaded l = load_fixture("bytelevel_smollm");
  ASSERT_TRUE(l.tok.has_value());
  const GgufVocab& v = l.vocab;
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  EXPECT_EQ(v.bos, id_of(v, "<|im_start|>"));
  EXPECT_EQ(v.eos, id_of(v, "<|im_end|>"));  // the object form {"content": ...}
  EXPECT_EQ(v.pad, id_of(v, "<|endoftext|>"));
  EXPECT_EQ(v.unk, id_of(v, "<|endoftext|>"));
  EXPECT_FALSE(v.add_bos);
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(v.token_types[0], static_cast<int32_t>(TokenType::kControl));
  EXPECT_EQ(v.token_types[id_of(v, "<file_sep>")], static_cast<int32_t>(TokenType::kUserDefined));
  EXPECT_EQ(v.token_types[id_of(v, "Ġ")], static_cast<int32_t>(TokenType::kNormal));
  const Json g = expect_hf_ids(*l.tok, "bytelevel_smollm");
  EXPECT_TRUE(g.is_null() || g["post_processor_bos"].is_null());
}

TEST(HfJsonFixture, ByteLevelGpt2WithStringMerges) {
  Loaded l = load_fixture("bytelevel_gpt2");
  ASSERT_TRUE(l.tok.has_value());
  const GgufVocab& v = l.vocab;
  EXPECT_EQ(v.pre, "gpt-2");
  EXPECT_EQ(v.tokens.size(), 1002u);  // the added tokens extend past model.vocab
  EXPECT_EQ(v.bos, 1000);
  EXPECT_EQ(v.eos, 1000);
  EXPECT_EQ(v.pad, -1);  // null in the config
  EXPECT_FALSE(v.add_bos);
  EXPECT_EQ(v.chat_template.find("{{ tools }}"), std::string::npos);  // the "default" entry
  EXPECT_NE(v.chat_template.find("<|im_start|>"), std::string::npos);
  expect_hf_ids(*l.tok, "bytelevel_gpt2");
}

TEST(HfJsonFixture, ByteLevelLlama3) {
  Loaded l = load_fixture("bytelevel_llama3");
  ASSERT_TRUE(l.tok.has_value());
  const GgufVocab& v = l.vocab;
  EXPECT_EQ(v.pre, "llama-bpe");  // Llama 3's regex with ignore_merges
  EXPECT_TRUE(l.tok->gguf_vocab().pre == "llama-bpe");
  // No add_bos_token in the config: the post-processor's template adds <|begin_of_text|>.
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.bos, id_of(v, "<|begin_of_text|>"));
  EXPECT_EQ(v.eos, id_of(v, "<|eot_id|>"));
  const Json g = expect_hf_ids(*l.tok, "bytelevel_llama3");
  if (!g.is_null()) EXPECT_EQ(g["post_processor_bos"].get<int32_t>(), v.bos);
}

TEST(HfJsonFixture, SentencePieceStyle) {
  Loaded l = load_fixture("spm_small");
  ASSERT_TRUE(l.tok.has_value());
  const GgufVocab& v = l.vocab;
  EXPECT_EQ(v.model, "llama");
  EXPECT_TRUE(v.add_space_prefix);
  EXPECT_TRUE(v.add_bos);
  EXPECT_EQ(v.unk, 0);
  EXPECT_EQ(v.bos, 1);
  EXPECT_EQ(v.eos, 2);
  EXPECT_EQ(v.token_types[0], static_cast<int32_t>(TokenType::kUnknown));
  EXPECT_EQ(v.token_types[1], static_cast<int32_t>(TokenType::kControl));
  EXPECT_EQ(v.token_types[3 + 0x41], static_cast<int32_t>(TokenType::kByte));
  EXPECT_EQ(v.token_types[id_of(v, "<file_sep>")], static_cast<int32_t>(TokenType::kUserDefined));
  EXPECT_EQ(l.tok->byte_id('\n'), 3 + '\n');
  // The same vocabulary as golden/spm_small.json (scores differ, the merges they give do not).
  const Json small = Json::parse(read_text(kGolden + "spm_small.json"));
  const std::vector<std::string> tokens = small["tokens"].get<std::vector<std::string>>();
  EXPECT_EQ(std::vector<std::string>(v.tokens.begin(), v.tokens.begin() + tokens.size()), tokens);
  GgufVocab ref;
  ref.model = "llama";
  ref.tokens = tokens;
  ref.token_types = small["token_types"].get<std::vector<int32_t>>();
  ref.scores = small["scores"].get<std::vector<float>>();
  ref.unk = 0;
  Expected<BpeTokenizer> reference = BpeTokenizer::from_gguf(ref);
  ASSERT_TRUE(reference.ok()) << reference.status().message();
  ASSERT_EQ(reference->merges().size(), l.tok->merges().size());
  for (size_t r = 0; r < reference->merges().size(); ++r) {
    EXPECT_EQ(reference->merges()[r].result, l.tok->merges()[r].result) << r;
  }
  const Json g = expect_hf_ids(*l.tok, "spm_small");
  if (!g.is_null()) EXPECT_EQ(g["post_processor_bos"].get<int32_t>(), 1);
}

// WordPiece (BERT's pipeline) -> "bert": llama.cpp's token form, [CLS]/[SEP] from the
// post-processor, the normalizer's flags, and HF's ids on every string.
void expect_wordpiece(const std::string& name, bool lowercase, int32_t max_chars) {
  Loaded l = load_fixture(name);
  ASSERT_TRUE(l.tok.has_value());
  const GgufVocab& v = l.vocab;
  EXPECT_EQ(v.model, "bert");
  EXPECT_EQ(v.lowercase, lowercase);
  EXPECT_EQ(v.strip_accents, lowercase);  // uncased: null -> lowercase; cased: false
  EXPECT_EQ(v.max_input_chars_per_word, max_chars);
  EXPECT_TRUE(v.add_bos);
  EXPECT_TRUE(v.add_eos);
  EXPECT_EQ(v.tokens[v.bos], "[CLS]");
  EXPECT_EQ(v.tokens[v.eos], "[SEP]");
  EXPECT_EQ(v.tokens[v.unk], "[UNK]");
  EXPECT_EQ(v.tokens[v.pad], "[PAD]");
  EXPECT_EQ(v.token_types[v.bos], static_cast<int32_t>(TokenType::kControl));
  EXPECT_TRUE(l.tok->add_eos());
  int words = 0, pieces = 0;
  for (const std::string& t : v.tokens) {
    words += t.rfind("\xe2\x96\x81", 0) == 0;
    pieces += t.rfind("\xe2\x96\x81", 0) != 0 && t.front() != '[';
    EXPECT_EQ(t.rfind("##", 0), std::string::npos) << t;
  }
  EXPECT_GT(words, 100);
  EXPECT_GT(pieces, 100);
  const Json g = expect_hf_ids(*l.tok, name);
  if (!g.is_null()) EXPECT_TRUE(g["post_processor_bos"].is_null());  // [CLS] ... [SEP]: two added
}

TEST(HfJsonFixture, WordPieceUncased) { expect_wordpiece("wordpiece_uncased", true, 100); }
TEST(HfJsonFixture, WordPieceCased) { expect_wordpiece("wordpiece_cased", false, 20); }

// SmolLM2's real vocabulary as a tokenizer.json, when make_hf_json_fixtures.py has written it
// (from the GGUF in models/; not committed): the same vocabulary as the GGUF, and HF's ids on
// every string of golden/smollm2_tokens.json.
TEST(HfJsonFixture, SmolLM2RebuiltFromGguf) {
  std::string dir;
  for (const std::string& d :
       {std::string(LONGCTX_BINARY_DIR) + "/smollm2_hf", std::string(LONGCTX_SOURCE_DIR) + "/build-tok/smollm2_hf"}) {
    if (std::filesystem::exists(d + "/tokenizer.json")) dir = d;
  }
  const std::string gguf = std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (dir.empty() || !std::filesystem::exists(gguf)) {
    GTEST_SKIP() << "run tests/tokenizer/make_hf_json_fixtures.py with SmolLM2's GGUF in models/";
  }
  Expected<GgufVocab> v = load_hf_vocab(dir);
  ASSERT_TRUE(v.ok()) << v.status().message();
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v.value());
  ASSERT_TRUE(t.ok()) << t.status().message();
  Expected<BpeTokenizer> from_gguf = model::load_tokenizer(gguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  const GgufVocab a = t->gguf_vocab(), b = from_gguf->gguf_vocab();
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.token_types, b.token_types);
  EXPECT_EQ(a.pre, b.pre);
  EXPECT_EQ(std::make_tuple(a.bos, a.eos, a.pad, a.add_bos), std::make_tuple(b.bos, b.eos, b.pad, b.add_bos));
  const Json cases = Json::parse(read_text(kGolden + "smollm2_tokens.json"))["cases"];
  int equal = 0, shown = 0;
  for (const Json& c : cases) {
    const std::string s = c["s"].get<std::string>();
    const std::vector<int32_t> got = c["special"].get<bool>() ? t->encode_special(s) : t->encode(s);
    if (got == c["ids"].get<std::vector<int32_t>>()) {
      ++equal;
    } else if (shown++ < 5) {
      ADD_FAILURE() << "ids differ from HF for '" << escaped(s) << "'";
    }
  }
  std::printf("smollm2 tokenizer.json: %d of %zu cases give HF's ids\n", equal, cases.size());
  EXPECT_EQ(equal, static_cast<int>(cases.size()));
}

// ---------------------------------------------------------------------------------------------
// Bad input.

// A small valid byte-level tokenizer.json: the 256 byte characters, three merges ("Ġt", "he",
// "Ġthe") and one special added token past model.vocab.
Json minimal_byte_level() {
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[gpt2_bytes_to_text(std::string(1, static_cast<char>(b)))] = b;
  vocab["Ġt"] = 256, vocab["he"] = 257, vocab["Ġthe"] = 258;
  return Json{{"version", "1.0"},
              {"added_tokens", Json::array({{{"id", 259},
                                             {"content", "<|eos|>"},
                                             {"special", true},
                                             {"normalized", false},
                                             {"lstrip", false},
                                             {"rstrip", false},
                                             {"single_word", false}}})},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "ByteLevel"}}},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", nullptr},
                {"byte_fallback", false},
                {"vocab", vocab},
                {"merges", Json::array({Json::array({"Ġ", "t"}), "h e", Json::array({"Ġt", "he"})})}}}};
}

Json minimal_config() { return Json{{"eos_token", "<|eos|>"}, {"add_bos_token", false}, {"chat_template", "{{x}}"}}; }

// The error for `tokenizer` (and `config`), which must fail.
std::string error_of(const Json& tokenizer, const Json& config = Json()) {
  Expected<GgufVocab> v = vocab_from_hf_json(tokenizer.dump(), config.is_null() ? "" : config.dump());
  EXPECT_FALSE(v.ok()) << "accepted: " << tokenizer.dump().substr(0, 300);
  return v.ok() ? "" : v.status().message();
}

Json with(Json j, const std::string& pointer, const Json& value) {
  j[Json::json_pointer(pointer)] = value;
  return j;
}

Json without(Json j, const std::string& pointer) {
  const Json::json_pointer p(pointer);
  j[p.parent_pointer()].erase(p.back());
  return j;
}

#define EXPECT_ERROR(expr, text) EXPECT_NE((expr).find(text), std::string::npos) << (expr)

TEST(HfJsonBadInput, MinimalFilesAreValid) {
  Expected<GgufVocab> v = vocab_from_hf_json(minimal_byte_level().dump(), minimal_config().dump());
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->tokens.size(), 260u);
  EXPECT_EQ(v->pre, "gpt-2");
  EXPECT_EQ(v->eos, 259);
  EXPECT_EQ(v->chat_template, "{{x}}");
  EXPECT_EQ(v->merges, (std::vector<std::string>{"Ġ t", "h e", "Ġt he"}));
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v.value());
  ASSERT_TRUE(t.ok()) << t.status().message();
  EXPECT_EQ(t->encode(" the"), std::vector<int32_t>{258});
  EXPECT_EQ(t->encode_special("<|eos|>"), std::vector<int32_t>{259});
  // No config at all.
  Expected<GgufVocab> bare = vocab_from_hf_json(minimal_byte_level().dump(), "");
  ASSERT_TRUE(bare.ok()) << bare.status().message();
  EXPECT_EQ(bare->eos, -1);
  EXPECT_FALSE(bare->add_bos);
}

TEST(HfJsonBadInput, MalformedJson) {
  for (const char* text : {"", "{", "not json", "{\"model\": }", "[1, 2", "{\"a\": \"\xff\"}"}) {
    Expected<GgufVocab> v = vocab_from_hf_json(text, "");
    ASSERT_FALSE(v.ok()) << text;
    EXPECT_EQ(v.status().message(), "tokenizer.json: not valid JSON") << text;
  }
  const std::string full = minimal_byte_level().dump();
  for (size_t n = 0; n < full.size(); n += 97) {
    Expected<GgufVocab> v = vocab_from_hf_json(full.substr(0, n), "");
    EXPECT_FALSE(v.ok()) << n;
  }
}

TEST(HfJsonBadInput, Structure) {
  EXPECT_ERROR(error_of(Json::array()), "tokenizer.json: is an array, not an object");
  EXPECT_ERROR(error_of(without(minimal_byte_level(), "/model")), "tokenizer.json: no \"model\"");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model", "BPE")), "model is a string, not an object");
  EXPECT_ERROR(error_of(without(minimal_byte_level(), "/model/type")), "model.type is missing");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/type", "Unigram")),
               "model type 'Unigram' is not supported (only BPE and WordPiece)");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/type", 3)), "model.type is a number, not a string");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/dropout", 0.1)), "BPE dropout is not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/continuing_subword_prefix", "##")),
               "model.continuing_subword_prefix '##' is not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/byte_fallback", "no")),
               "model.byte_fallback is a string, not a boolean");
}

TEST(HfJsonBadInput, Vocabulary) {
  EXPECT_ERROR(error_of(without(minimal_byte_level(), "/model/vocab")), "model.vocab is missing");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab", Json::array())),
               "model.vocab is an array, not an object of token -> id");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", "257")),
               "model.vocab 'he' id is a string, not an integer");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", 257.0)),
               "model.vocab 'he' id is a number, not an integer");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", -1)), "model.vocab 'he' id -1 is outside");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", 4000000000u)), "id 4000000000 is outside");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", 256)), "both have id 256");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/he", 300)),
               "token ids are not dense: 260 tokens (model.vocab and added_tokens) have ids up to 300, and none "
               "has id 257");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/id", 261)), "none has id 259");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/id", 258)),
               "added_tokens[0] '<|eos|>' has id 258, which is 'Ġthe'");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/content", "he")), "token 'he' has two ids");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens", Json::object())),
               "added_tokens is an object, not a list");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0", "<|eos|>")),
               "added_tokens[0] is a string, not an object");
  EXPECT_ERROR(error_of(without(minimal_byte_level(), "/added_tokens/0/id")), "added_tokens[0] '<|eos|>' has no id");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/special", 1)),
               "added_tokens[0].special is a number, not a boolean");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/lstrip", true)),
               "lstrip, rstrip and single_word are not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/added_tokens/0/content", "")), "added_tokens[0] '' is empty");
  // A token outside GPT-2's byte alphabet: from_gguf's check, reported by the loader.
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/vocab/a b", 260)),
               "tokenizer.json: bpe: token 260 'a b': character U+0020 is not in GPT-2's byte alphabet");
}

TEST(HfJsonBadInput, Merges) {
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/1", "h zz")),
               "model.merges[1] ('h', 'zz'): right side 'zz' is not a token");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/1", Json::array({"zz", "e"}))),
               "model.merges[1] ('zz', 'e'): left side 'zz' is not a token");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/1", "e h")),
               "model.merges[1] ('e', 'h'): joined result 'eh' is not a token");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/1", "he")),
               "model.merges[1] 'he' is not two tokens separated by one space");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/1", Json::array({"h"}))),
               "model.merges[1] is [\"h\"], not \"left right\" or [left, right]");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges", "h e")), "model.merges is a string, not a list");
  // A repeated merge: from_gguf's check.
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/merges/2", "h e")), "repeats merge 1");
}

TEST(HfJsonBadInput, PreTokenizerNormalizerDecoder) {
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/pre_tokenizer",
                             Json::parse(R"({"type": "Sequence", "pretokenizers": [{"type": "WhitespaceSplit"},
                                            {"type": "ByteLevel", "add_prefix_space": false}]})"))),
               "tokenizer.json: pre-tokenizer Sequence[WhitespaceSplit, ByteLevel(add_prefix_space=false)] is not "
               "supported");
  EXPECT_ERROR(
      error_of(with(minimal_byte_level(), "/pre_tokenizer", Json::parse(R"({"type": "Sequence", "pretokenizers": [
                                            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated"},
                                            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"))),
      "its regexes are none of longctx's pre-tokenizers");
  EXPECT_ERROR(
      error_of(with(minimal_byte_level(), "/pre_tokenizer", Json::parse(R"({"type": "Sequence", "pretokenizers": [
                                            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed"},
                                            {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})"))),
      "behavior=\"Removed\"");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/pre_tokenizer/add_prefix_space", true)),
               "ByteLevel add_prefix_space=true is not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/pre_tokenizer", Json{{"type", "Sequence"}})),
               "pre-tokenizer Sequence has no \"pretokenizers\" list");
  // Llama 3's regex without ignore_merges is "dbrx"; GPT-2's with ignore_merges has no name.
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/ignore_merges", true)),
               "with model.ignore_merges=true is not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/normalizer", Json{{"type", "NFC"}})),
               "normalizer NFC is not supported for byte-level BPE (only none)");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/decoder", nullptr)),
               "decoder none is not supported for byte-level BPE (expected ByteLevel)");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/pre_tokenizer", Json{{"type", "Whitespace"}})),
               "BPE with pre-tokenizer Whitespace, normalizer none and no byte_fallback is not supported");
  EXPECT_ERROR(error_of(with(minimal_byte_level(), "/model/unk_token", "<unk>")),
               "model.unk_token '<unk>' is not a token");
}

TEST(HfJsonBadInput, Config) {
  const Json tj = minimal_byte_level();
  EXPECT_ERROR(error_of(tj, "nope"), "tokenizer_config.json: is a string, not an object");
  Expected<GgufVocab> v = vocab_from_hf_json(tj.dump(), "{");
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), "tokenizer_config.json: not valid JSON");
  EXPECT_ERROR(error_of(tj, Json::array()), "tokenizer_config.json: is an array, not an object");
  EXPECT_ERROR(error_of(tj, Json{{"bos_token", 5}}),
               "tokenizer_config.json: bos_token is a number, not a string or an object with \"content\"");
  EXPECT_ERROR(error_of(tj, Json{{"eos_token", "<|nope|>"}}),
               "tokenizer_config.json: eos_token '<|nope|>' is not a token of tokenizer.json");
  EXPECT_ERROR(error_of(tj, Json{{"pad_token", {{"text", "<|eos|>"}}}}),
               "pad_token is an object without a string \"content\"");
  EXPECT_ERROR(error_of(tj, Json{{"add_bos_token", "yes"}}), "add_bos_token is a string, not a boolean");
  EXPECT_ERROR(error_of(tj, Json{{"add_bos_token", true}}),
               "tokenizer_config.json: add_bos_token is true, but there is no bos_token");
  EXPECT_ERROR(error_of(tj, Json{{"chat_template", 1}}), "chat_template is a number, not a string or a list");
  EXPECT_ERROR(error_of(tj, Json{{"chat_template", Json::array({"x"})}}),
               "chat_template[0] is not an object with string \"name\" and \"template\"");
}

TEST(HfJsonBadInput, SentencePieceStyle) {
  const Json spm = Json::parse(read_text(kFixtures + "spm_small/tokenizer.json"));
  ASSERT_TRUE(vocab_from_hf_json(spm.dump(), "").ok());
  EXPECT_ERROR(error_of(with(spm, "/normalizer", nullptr)),
               "no normalizer and no pre-tokenizer (SentencePiece-style BPE needs");
  const Json metaspace =
      with(with(spm, "/normalizer", nullptr), "/pre_tokenizer",
           Json{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "always"}, {"split", false}});
  EXPECT_ERROR(error_of(metaspace), "Metaspace with prepend_scheme \"always\" is not supported");
  EXPECT_ERROR(error_of(with(metaspace, "/pre_tokenizer/split", true)), "Metaspace with split=true is not supported");
  // Metaspace "never" is Replace(" ", "▁") alone: no space prefix, and no Strip in the decoder.
  Json never = with(metaspace, "/pre_tokenizer/prepend_scheme", "never");
  EXPECT_ERROR(error_of(never), "decoder Sequence[");
  never["decoder"]["decoders"].erase(3);
  Expected<GgufVocab> v = vocab_from_hf_json(never.dump(), "");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_FALSE(v->add_space_prefix);
  EXPECT_ERROR(error_of(with(spm, "/normalizer/normalizers/0/prepend", "_")), "normalizer Sequence[Prepend(");
  EXPECT_ERROR(error_of(with(spm, "/normalizer", Json{{"type", "NFKC"}})), "normalizer NFKC is not supported");
  EXPECT_ERROR(error_of(with(spm, "/decoder/decoders/1/type", "Fuse")), "is not supported for SentencePiece-style");
  EXPECT_ERROR(error_of(with(spm, "/model/ignore_merges", true)), "ignore_merges=true is not supported");
  EXPECT_ERROR(error_of(with(spm, "/added_tokens/0/normalized", true)),
               "added token '<unk>' is normalized, which is not supported with a normalizer");
  // Merges that token scores cannot give: a token's second merge moved to the end (scores rank
  // all merges of a token together), or the only merge of the last token dropped.
  const Json& merges = spm["model"]["merges"];
  auto joined = [&](size_t r) { return merges[r][0].get<std::string>() + merges[r][1].get<std::string>(); };
  size_t second = 0;
  for (size_t r = 0; r + 1 < merges.size() && second == 0; ++r) {
    if (joined(r) == joined(r + 1)) second = r + 1;
  }
  ASSERT_GT(second, 0u);
  Json moved = spm;
  moved["model"]["merges"].erase(second);
  moved["model"]["merges"].push_back(merges[second]);
  EXPECT_ERROR(error_of(moved),
               "model.merges cannot be expressed as SentencePiece scores (longctx merges every split "
               "of a token into two tokens, by the token's score): merge " +
                   std::to_string(second));
  Json dropped = spm;
  dropped["model"]["merges"].erase(merges.size() - 1);
  EXPECT_ERROR(error_of(dropped), "is absent in the file but (");
}

TEST(HfJsonBadInput, LoadNamesTheFile) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("longctx_hf_json_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  Expected<GgufVocab> v = load_hf_vocab(dir.string());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), (dir / "tokenizer.json").string() + ": no such file");
  std::ofstream(dir / "tokenizer.json") << minimal_byte_level().dump();
  std::ofstream(dir / "tokenizer_config.json") << "{\"bos_token\": 3.5}";
  v = load_hf_vocab(dir.string());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(), (dir / "tokenizer_config.json").string() +
                                      ": bos_token is a number, not a string or an object with \"content\"");
  std::ofstream(dir / "tokenizer_config.json") << "{\"eos_token\": \"<|eos|>\"}";
  std::ofstream(dir / "chat_template.jinja") << "{{ messages }}";
  v = load_hf_vocab(dir.string());
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_EQ(v->chat_template, "{{ messages }}");
  EXPECT_EQ(v->eos, 259);
  // The file itself may be named too.
  EXPECT_TRUE(load_hf_vocab((dir / "tokenizer.json").string()).ok());
  std::ofstream(dir / "tokenizer.json") << "{\"model\": {\"type\": \"Unigram\"}}";
  v = load_hf_vocab(dir.string());
  ASSERT_FALSE(v.ok());
  EXPECT_EQ(v.status().message(),
            (dir / "tokenizer.json").string() + ": model type 'Unigram' is not supported (only BPE and WordPiece)");
  fs::remove_all(dir);
}

// Every node of a valid file replaced by values of other types, one at a time: the result is a
// vocabulary or an error, never an exception or a crash.
void mutate_everywhere(const Json& tokenizer, const Json& config, size_t stride) {
  std::vector<Json::json_pointer> nodes;
  std::function<void(const Json&, const Json::json_pointer&)> walk = [&](const Json& j, const Json::json_pointer& p) {
    nodes.push_back(p);
    if (j.is_object()) {
      for (auto it = j.begin(); it != j.end(); ++it) walk(it.value(), p / it.key());
    } else if (j.is_array()) {
      for (size_t i = 0; i < j.size(); ++i) walk(j[i], p / i);
    }
  };
  walk(tokenizer, Json::json_pointer());
  const Json replacements[] = {nullptr,        -1,  1u << 31, 0.5, "", "x", Json::array(), Json::array({1}),
                               Json::object(), true};
  int ok = 0, failed = 0;
  auto step = [&](size_t k) {
    const std::string p = nodes[k].to_string();
    return p.rfind("/model/vocab/", 0) == 0 || p.rfind("/model/merges/", 0) == 0 ? stride : 1;
  };
  for (size_t k = 1; k < nodes.size(); k += step(k)) {
    for (const Json& r : replacements) {
      Json t = tokenizer;
      t[nodes[k]] = r;
      Expected<GgufVocab> v = vocab_from_hf_json(t.dump(), config.dump());
      if (v.ok()) {
        ++ok;
        EXPECT_TRUE(BpeTokenizer::from_gguf(v.value()).ok()) << nodes[k].to_string();
      } else {
        ++failed;
        EXPECT_FALSE(v.status().message().empty());
      }
    }
  }
  for (const char* key : {"bos_token", "eos_token", "pad_token", "unk_token", "add_bos_token", "chat_template"}) {
    for (const Json& r : replacements) {
      Json c = config;
      c[key] = r;
      Expected<GgufVocab> v = vocab_from_hf_json(tokenizer.dump(), c.dump());
      ok += v.ok(), failed += !v.ok();
    }
  }
  std::printf("mutations: %d loaded, %d refused\n", ok, failed);
}

TEST(HfJsonBadInput, MutationsNeverCrash) {
  mutate_everywhere(minimal_byte_level(), minimal_config(), 16);
  mutate_everywhere(Json::parse(read_text(kFixtures + "spm_small/tokenizer.json")),
                    Json::parse(read_text(kFixtures + "spm_small/tokenizer_config.json")), 97);
}

TEST(HfJsonBadInput, WordPieceShapes) {
  const Json good = Json::parse(read_text(kFixtures + "wordpiece_uncased/tokenizer.json"));
  ASSERT_TRUE(vocab_from_hf_json(good.dump(), "").ok());
  EXPECT_ERROR(error_of(with(good, "/normalizer", Json{{"type", "NFC"}})),
               "normalizer NFC is not supported (WordPiece needs a BertNormalizer");
  EXPECT_ERROR(error_of(with(good, "/normalizer", nullptr)), "no normalizer is not supported");
  EXPECT_ERROR(error_of(with(good, "/normalizer/clean_text", false)), "clean_text=false");
  EXPECT_ERROR(error_of(with(good, "/normalizer/lowercase", "yes")), "lowercase is a string, not a boolean");
  EXPECT_ERROR(error_of(with(good, "/pre_tokenizer", Json{{"type", "Whitespace"}})),
               "pre-tokenizer Whitespace is not supported for WordPiece (only BertPreTokenizer)");
  EXPECT_ERROR(error_of(with(good, "/decoder/cleanup", false)), "is not supported for WordPiece (expected WordPiece(");
  EXPECT_ERROR(error_of(with(good, "/decoder", nullptr)), "decoder none is not supported for WordPiece");
  EXPECT_ERROR(error_of(with(good, "/model/continuing_subword_prefix", "@@")),
               "model.continuing_subword_prefix '@@' is not supported");
  EXPECT_ERROR(error_of(with(good, "/model/unk_token", "[NOPE]")), "model.unk_token '[NOPE]' is not a token");
  EXPECT_ERROR(error_of(with(good, "/model/max_input_chars_per_word", 0)), "max_input_chars_per_word is 0");
  EXPECT_ERROR(error_of(with(good, "/post_processor", Json{{"type", "RobertaProcessing"}})),
               "post_processor RobertaProcessing is not supported for WordPiece");
  EXPECT_ERROR(error_of(with(good, "/added_tokens/0/normalized", true)), "is normalized");
  Json no_post = with(good, "/post_processor", nullptr);
  Expected<GgufVocab> v = vocab_from_hf_json(no_post.dump(), "");
  ASSERT_TRUE(v.ok()) << v.status().message();
  EXPECT_FALSE(v->add_bos);
  EXPECT_FALSE(v->add_eos);
}

TEST(HfJsonBadInput, WordPieceMutations) {
  mutate_everywhere(Json::parse(read_text(kFixtures + "wordpiece_cased/tokenizer.json")),
                    Json::parse(read_text(kFixtures + "wordpiece_cased/tokenizer_config.json")), 53);
}

}  // namespace
}  // namespace longctx::tokenizer
