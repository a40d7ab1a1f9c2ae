// Real tokenizers against Hugging Face `tokenizers` (goldens from tests/tokenizer/
// make_hf_golden.py): SmolLM2-135M-Instruct's byte-level BPE loaded from its GGUF file (skipped
// when scripts/fetch_model.sh has not fetched it), and a small SentencePiece-style ("llama")
// vocabulary that the golden itself carries. Every string must give HF's ids exactly, and decode
// must give the string back.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "io/gguf.h"
#include "model/checkpoint.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

const std::string kModel =
    std::string(LONGCTX_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
const std::string kGolden = std::string(LONGCTX_SOURCE_DIR) + "/tests/tokenizer/golden/";

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
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

// Compares every golden case; prints the first few differences and a summary line.
void expect_golden(const BpeTokenizer& tok, const nlohmann::json& cases, bool round_trip_all,
                   const char* what) {
  int equal = 0, shown = 0, round_trips = 0, round_trip_checked = 0;
  for (const auto& c : cases) {
    const std::string s = c["s"].get<std::string>();
    const bool special = c["special"].get<bool>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = special ? tok.encode_special(s) : tok.encode(s);
    if (got == want) {
      ++equal;
    } else if (shown++ < 5) {
      ADD_FAILURE() << what << ": ids differ from HF for '" << escaped(s) << "' (special "
                    << special << "): " << ::testing::PrintToString(got) << " vs HF "
                    << ::testing::PrintToString(want);
    }
    if (round_trip_all || !special) {
      ++round_trip_checked;
      const std::string back = tok.decode(got, /*render_special=*/special);
      if (back == s) {
        ++round_trips;
      } else {
        ADD_FAILURE() << what << ": decode(encode(s)) != s for '" << escaped(s) << "': '"
                      << escaped(back) << "'";
      }
    }
  }
  std::printf("%s: %d of %zu cases give HF's ids; %d of %d round-trip\n", what, equal, cases.size(),
              round_trips, round_trip_checked);
  EXPECT_EQ(equal, static_cast<int>(cases.size()));
}

class SmolLM2 : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kModel)) {
      FAIL() << kModel << " is missing: run scripts/fetch_model.sh (scripts/test.sh does)";
    }
    Expected<BpeTokenizer> t = model::load_tokenizer(kModel);
    ASSERT_TRUE(t.ok()) << t.status().message();
    tok_.emplace(std::move(t.value()));
  }
  std::optional<BpeTokenizer> tok_;
};

TEST_F(SmolLM2, MetadataFromGguf) {
  const BpeTokenizer& t = *tok_;
  EXPECT_EQ(t.vocab_size(), 49152);
  EXPECT_EQ(t.merges().size(), 48900u);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_EQ(t.pad_id(), 2);
  EXPECT_FALSE(t.add_bos());
  EXPECT_NE(t.chat_template().find("<|im_start|>"), std::string::npos);
  EXPECT_EQ(t.gguf_vocab().pre, "smollm");
  for (int32_t id = 0; id < 17; ++id) EXPECT_TRUE(t.is_special(id)) << id;
  EXPECT_FALSE(t.is_special(17));
  EXPECT_EQ(t.token_type(1), TokenType::kControl);
  EXPECT_EQ(t.token_type(100), TokenType::kNormal);
}

TEST_F(SmolLM2, MatchesHuggingFaceOnEveryGoldenString) {
  const nlohmann::json g = read_json(kGolden + "smollm2_tokens.json");
  ASSERT_GE(g["cases"].size(), 2000u);
  expect_golden(*tok_, g["cases"], /*round_trip_all=*/true, "smollm2");
}

TEST_F(SmolLM2, ChatMarkupAndControlTokens) {
  const BpeTokenizer& t = *tok_;
  const std::string chat = "<|im_start|>user\nHi<|im_end|>\n";
  const std::vector<int32_t> ids = t.encode_special(chat);
  ASSERT_GE(ids.size(), 4u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 2), 1);
  // Control tokens decode to nothing unless asked; encode() treats their text as text.
  EXPECT_EQ(t.decode(ids), "user\nHi\n");
  EXPECT_EQ(t.decode(ids, /*render_special=*/true), chat);
  EXPECT_EQ(t.token_bytes(1), "");
  const std::vector<int32_t> plain = t.encode(chat);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 1), 0);
  EXPECT_EQ(t.decode(plain), chat);
  // encode_append with parse_special is encode_special.
  std::vector<int32_t> appended = {7};
  t.encode_append(chat, appended, /*parse_special=*/true);
  EXPECT_EQ(std::vector<int32_t>(appended.begin() + 1, appended.end()), ids);
  // Byte-level decoding: 'Ġ' is a space, 'Ċ' a newline; token bytes, not GGUF text.
  const std::vector<int32_t> hello = t.encode(" Hello\n");
  std::string joined;
  for (int32_t id : hello) joined += t.token_bytes(id);
  EXPECT_EQ(joined, " Hello\n");
}

TEST_F(SmolLM2, SurvivesArbitraryBytes) {
  // Not HF's domain (it takes valid UTF-8 only), but nothing may crash and bytes must round-trip.
  std::string s;
  uint32_t x = 12345;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1664525u + 1013904223u;
    s += static_cast<char>(x >> 24);
  }
  // SmolLM2 has no token for 21 bytes (0x04, 0xC0, 0xFF, ...): HF drops them, and so do we.
  std::string kept;
  int missing = 0;
  for (int b = 0; b < 256; ++b) missing += tok_->byte_id(static_cast<uint8_t>(b)) < 0;
  EXPECT_EQ(missing, 21);
  for (char c : s) {
    if (tok_->byte_id(static_cast<uint8_t>(c)) >= 0) kept += c;
  }
  EXPECT_EQ(tok_->decode(tok_->encode(s)), kept);
  EXPECT_EQ(tok_->decode(tok_->encode_special(s), /*render_special=*/true), kept);
  EXPECT_EQ(tok_->decode(tok_->encode(kept)), kept);
  // A dropped byte does not separate what merges around it, as in HF: ".\x04." is "..".
  EXPECT_EQ(tok_->encode(".\x04."), tok_->encode(".."));
  EXPECT_EQ(tok_->encode(".\x04.").size(), 1u);
}

TEST_F(SmolLM2, WritesAndReadsBackItsGgufKeys) {
  io::GgufWriter w;
  model::write_tokenizer_keys(w, *tok_);
  Expected<std::vector<uint8_t>> bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  Expected<io::GgufFile> f = io::GgufFile::from_bytes(std::move(bytes.value()));
  ASSERT_TRUE(f.ok()) << f.status().message();
  Expected<BpeTokenizer> back = model::read_tokenizer(f.value());
  ASSERT_TRUE(back.ok()) << back.status().message();
  const GgufVocab a = tok_->gguf_vocab(), b = back->gguf_vocab();
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
  EXPECT_EQ(a.token_types, b.token_types);
  EXPECT_EQ(a.pre, b.pre);
  EXPECT_EQ(a.chat_template, b.chat_template);
  EXPECT_EQ(std::make_tuple(a.bos, a.eos, a.pad, a.unk, a.add_bos),
            std::make_tuple(b.bos, b.eos, b.pad, b.unk, b.add_bos));
  const std::string s = "<|im_start|>user\nDon't split 12345 things, ok? 你好<|im_end|>";
  EXPECT_EQ(back->encode_special(s), tok_->encode_special(s));
}

// A real text (LONGCTX_CORPUS, set by scripts/test.sh): round trip and the encoding speed.
TEST_F(SmolLM2, CorpusRoundTrip) {
  const char* path = std::getenv("LONGCTX_CORPUS");
  if (path == nullptr || path[0] == '\0') GTEST_SKIP() << "set LONGCTX_CORPUS to a text file";
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok_->encode(text);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("SmolLM2 encodes %s: %zu bytes -> %zu tokens in %.2f s (%.1f MB/s)\n", path,
              text.size(), ids.size(), secs, text.size() / secs / 1e6);
  EXPECT_EQ(tok_->decode(ids), text);
}

TEST(SentencePiece, MatchesHuggingFaceOnSmallVocabulary) {
  const nlohmann::json g = read_json(kGolden + "spm_small.json");
  GgufVocab v;
  v.model = "llama";
  v.tokens = g["tokens"].get<std::vector<std::string>>();
  v.token_types = g["token_types"].get<std::vector<int32_t>>();
  v.scores = g["scores"].get<std::vector<float>>();
  v.unk = g["unk"], v.bos = g["bos"], v.eos = g["eos"];
  v.add_bos = true;
  v.add_space_prefix = true;
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v);
  ASSERT_TRUE(t.ok()) << t.status().message();
  ASSERT_GE(g["cases"].size(), 1000u);
  expect_golden(t.value(), g["cases"], /*round_trip_all=*/false, "spm_small");
  EXPECT_TRUE(t->add_bos());
  EXPECT_EQ(t->gguf_vocab().model, "llama");
  EXPECT_EQ(t->byte_id('\n'), 3 + '\n');  // <0x0A>

  // Through the GGUF keys and back (scores, types, add_space_prefix, ids).
  io::GgufWriter w;
  model::write_tokenizer_keys(w, t.value());
  Expected<std::vector<uint8_t>> bytes = w.to_bytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status().message();
  Expected<io::GgufFile> f = io::GgufFile::from_bytes(std::move(bytes.value()));
  ASSERT_TRUE(f.ok()) << f.status().message();
  Expected<BpeTokenizer> back = model::read_tokenizer(f.value());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->gguf_vocab().tokens, v.tokens);
  EXPECT_EQ(back->gguf_vocab().scores, v.scores);
  const std::string s = "<s>Hello world, naïve 😀 text</s>";
  EXPECT_EQ(back->encode_special(s), t->encode_special(s));
  EXPECT_EQ(back->encode(s), t->encode(s));
}

}  // namespace
}  // namespace longctx::tokenizer
