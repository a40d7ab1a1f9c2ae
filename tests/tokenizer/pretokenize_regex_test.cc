// The regex pre-tokenizers (PreTokenizer::by_name) against Hugging Face `tokenizers` (golden from
// tests/tokenizer/make_hf_golden.py: HF Split(Isolated) sequences of the same patterns), plus
// special-token matching and user-defined tokens on a small vocabulary built here.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/special_tokens.h"

namespace longctx::tokenizer {
namespace {

using namespace std::string_literals;

const std::string kGolden =
    std::string(LONGCTX_SOURCE_DIR) + "/tests/tokenizer/golden/pretokenizers.json";

PreTokenizer pre_or_die(const std::string& name) {
  Expected<PreTokenizer> p = PreTokenizer::by_name(name);
  EXPECT_TRUE(p.ok()) << p.status().message();
  return p.ok() ? p.value() : PreTokenizer();
}

std::vector<std::string> pieces(const PreTokenizer& p, std::string_view s) {
  std::vector<std::string> out;
  for (std::string_view v : p.split(s)) out.emplace_back(v);
  return out;
}

TEST(PreTokenizer, MatchesHuggingFaceSplits) {
  std::ifstream f(kGolden);
  ASSERT_TRUE(f.good()) << kGolden;
  std::stringstream ss;
  ss << f.rdbuf();
  const nlohmann::json g = nlohmann::json::parse(ss.str());
  ASSERT_GE(g["cases"].size(), 500u);
  for (const auto& [name, patterns] : g["patterns"].items()) {
    const PreTokenizer p = pre_or_die(name);
    int equal = 0;
    for (const auto& c : g["cases"]) {
      const std::string s = c["s"].get<std::string>();
      std::vector<size_t> got;
      for (std::string_view piece : p.split(s)) got.push_back(piece.size());
      const std::vector<size_t> want = c[name].get<std::vector<size_t>>();
      if (got == want) {
        ++equal;
      } else {
        ADD_FAILURE() << name << ": pieces of '" << s << "' are " << ::testing::PrintToString(got)
                      << " bytes, HF " << ::testing::PrintToString(want);
      }
    }
    std::printf("pre-tokenizer %s: %d of %zu strings split as HF does\n", name.c_str(), equal,
                g["cases"].size());
  }
}

TEST(PreTokenizer, HandWorkedSplits) {
  const PreTokenizer smollm = pre_or_die("smollm");
  EXPECT_EQ(pieces(smollm, "Hello world's 2024!"),
            (std::vector<std::string>{"Hello", " world", "'s", " ", "2", "0", "2", "4", "!"}));
  const PreTokenizer llama3 = pre_or_die("llama3");
  EXPECT_EQ(pieces(llama3, "I'M 12345 abc\n\n  x"),
            (std::vector<std::string>{"I", "'M", " ", "123", "45", " abc", "\n\n", " ", " x"}));
  const PreTokenizer qwen2 = pre_or_die("qwen2");
  EXPECT_EQ(pieces(qwen2, "x=123"), (std::vector<std::string>{"x", "=", "1", "2", "3"}));
  const PreTokenizer gpt2 = pre_or_die("gpt2");
  EXPECT_EQ(pieces(gpt2, "naïve café, Привет"),
            (std::vector<std::string>{"naïve", " café", ",", " Привет"}));
  // U+180E is not White_Space (HF), though PCRE2's own \s takes it.
  EXPECT_EQ(pieces(gpt2, "a\xe1\xa0\x8e b"), (std::vector<std::string>{"a", "\xe1\xa0\x8e", " b"}));
  // "longctx" is the byte-class splitter of pretokenize.cc.
  const PreTokenizer ours = pre_or_die("longctx");
  EXPECT_EQ(pieces(ours, "naïve 12"), (std::vector<std::string>{"naïve", " 12"}));
  EXPECT_EQ(PreTokenizer().name(), "longctx");
}

TEST(PreTokenizer, UnknownNameIsAClearError) {
  Expected<PreTokenizer> p = PreTokenizer::by_name("no-such-pre");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("unknown pre-tokenizer 'no-such-pre'"), std::string::npos);
  EXPECT_NE(p.status().message().find("smollm"), std::string::npos) << p.status().message();
  for (const std::string& name : PreTokenizer::names())
    EXPECT_TRUE(PreTokenizer::by_name(name).ok());
}

TEST(PreTokenizer, AnyBytesGiveContiguousPieces) {
  // Invalid UTF-8, NUL bytes: every byte in exactly one non-empty piece, for every name.
  Rng rng(5);
  const std::string alphabet =
      "ab Z09'sll\n\t\r.,!\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\x80\xff\xc3\x00"s;
  for (const std::string& name : PreTokenizer::names()) {
    const PreTokenizer p = pre_or_die(name);
    for (int i = 0; i < 300; ++i) {
      std::string s;
      const size_t n = rng.below(60);
      for (size_t k = 0; k < n; ++k) {
        s += rng.below(4) == 0 ? static_cast<char>(rng.below(256))
                               : alphabet[rng.below(alphabet.size())];
      }
      std::string joined;
      for (std::string_view piece : p.split(s)) {
        ASSERT_FALSE(piece.empty()) << name;
        ASSERT_EQ(piece.data(), s.data() + joined.size()) << name;
        joined += piece;
      }
      ASSERT_EQ(joined, s) << name;
    }
  }
}

TEST(PreTokenizer, LongRunsStayFast) {
  // A megabyte of one class: no JIT stack overflow, no quadratic backtracking.
  for (const std::string& name : {"gpt2"s, "llama3"s, "qwen2"s, "smollm"s, "default"s}) {
    const PreTokenizer p = pre_or_die(name);
    for (const std::string& s : {std::string(1 << 20, ' ') + "x", std::string(1 << 20, 'a'),
                                 std::string(1 << 20, '\n') + "x", std::string(1 << 20, '.'),
                                 std::string(1 << 20, '\xff')}) {
      const auto t0 = std::chrono::steady_clock::now();
      size_t total = 0, count = 0;
      p.split(s, [&](std::string_view piece) { total += piece.size(), ++count; });
      EXPECT_EQ(total, s.size()) << name;
      const double secs =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%-8s %zu-byte run of 0x%02x: %zu pieces in %.3f s\n", name.c_str(), s.size(),
                  static_cast<unsigned char>(s[0]), count, secs);
    }
  }
}

TEST(SpecialTokens, LeftmostLongest) {
  const SpecialTokenMatcher m({{"<a>", 1, true},
                               {"<a><b>", 2, true},
                               {"<b>", 3, true},
                               {"a>", 4, true},
                               {"<u>", 5, false}});
  auto run = [&](std::string_view s, bool parse_control) {
    std::string out;
    m.split(
        s, parse_control, [&](std::string_view t) { out += "[" + std::string(t) + "]"; },
        [&](int32_t id) { out += "#" + std::to_string(id); });
    return out;
  };
  EXPECT_EQ(run("x<a><b>y", true), "[x]#2[y]");  // longest at the leftmost start
  EXPECT_EQ(run("<a><a>", true), "#1#1");
  EXPECT_EQ(run("<<a>>", true), "[<]#1[>]");
  EXPECT_EQ(run("xa><b>", true), "[x]#4#3");  // the leftmost start wins over a longer one
  EXPECT_EQ(run("x<a><b>y<u>", false), "[x<a><b>y]#5");  // user-defined: always
  EXPECT_EQ(run("", true), "");
  EXPECT_EQ(run("<a", true), "[<a]");
}

// A small byte-level vocabulary with one control and one user-defined token (like HF added
// tokens that are special / not special).
BpeTokenizer small_real_vocab(const std::string& pre) {
  TrainOptions opt;
  opt.vocab_size = 300;
  Expected<BpeTokenizer> trained = BpeTokenizer::train("hello world, hello there 123 456", opt);
  EXPECT_TRUE(trained.ok());
  GgufVocab v = trained->gguf_vocab();
  v.pre = pre;
  v.tokens.push_back("<|ctl|>");
  v.token_types.push_back(static_cast<int32_t>(TokenType::kControl));
  v.tokens.push_back("<tool call>");  // raw text: a real space, not 'Ġ'
  v.token_types.push_back(static_cast<int32_t>(TokenType::kUserDefined));
  v.chat_template = "{{ messages }}";
  v.add_bos = true;
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t).value();
}

TEST(SpecialTokens, ControlParsedOnRequestUserDefinedAlways) {
  const BpeTokenizer t = small_real_vocab("gpt2");
  const int32_t ctl = t.vocab_size() - 2, tool = t.vocab_size() - 1;
  EXPECT_TRUE(t.is_special(ctl));
  EXPECT_FALSE(t.is_special(tool));
  EXPECT_EQ(t.token_type(tool), TokenType::kUserDefined);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.chat_template(), "{{ messages }}");
  const std::string s = "hello<|ctl|>world<tool call>!";
  const std::vector<int32_t> plain = t.encode(s), parsed = t.encode_special(s);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), ctl), 0);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), tool), 1);
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), ctl), 1);
  EXPECT_EQ(std::count(parsed.begin(), parsed.end(), tool), 1);
  EXPECT_EQ(t.decode(plain), s);
  EXPECT_EQ(t.decode(parsed), "helloworld<tool call>!");
  EXPECT_EQ(t.decode(parsed, /*render_special=*/true), s);
  EXPECT_EQ(t.token_bytes(tool), "<tool call>");
  EXPECT_EQ(t.token_bytes(ctl), "");
  // Exported and read back: same tokens, types and behaviour.
  Expected<BpeTokenizer> back = BpeTokenizer::from_gguf(t.gguf_vocab());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->encode_special(s), parsed);
  EXPECT_EQ(back->gguf_vocab().tokens, t.gguf_vocab().tokens);
}

TEST(GgufVocab, RejectsBadInput) {
  BpeTokenizer base = small_real_vocab("gpt2");
  const GgufVocab good = base.gguf_vocab();
  struct Case {
    const char* what;
    GgufVocab v;
    const char* message_part;
  };
  std::vector<Case> cases;
  auto edit = [&](const char* what, const char* part, auto fn) {
    GgufVocab v = good;
    fn(v);
    cases.push_back({what, v, part});
  };
  edit("unknown pre", "unknown pre-tokenizer 'nope'", [](GgufVocab& v) { v.pre = "nope"; });
  edit("unknown model", "not supported", [](GgufVocab& v) { v.model = "t5"; });
  edit("types length", "token types", [](GgufVocab& v) { v.token_types.pop_back(); });
  edit("bad type", "unknown type 9", [](GgufVocab& v) { v.token_types[5] = 9; });
  edit("bos range", "bos id", [](GgufVocab& v) { v.bos = 100000; });
  edit("unk range", "unk id", [](GgufVocab& v) { v.unk = -5; });
  edit("user-defined in merge", "special token",
       [](GgufVocab& v) { v.token_types[256] = static_cast<int32_t>(TokenType::kUserDefined); });
  edit("missing byte in longctx", "no token for byte", [](GgufVocab& v) {
    v.pre = "longctx";
    v.tokens['q'] = "<|q|>";
  });
  edit("spm scores length", "scores", [](GgufVocab& v) {
    v.model = "llama";
    v.scores = {1.0f};
  });
  for (const Case& c : cases) {
    Expected<BpeTokenizer> r = BpeTokenizer::from_gguf(c.v);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.status().message().find(c.message_part), std::string::npos)
        << c.what << ": " << r.status().message();
  }
  // A real vocabulary may lack a byte: encode drops it (HF's behaviour without unk).
  GgufVocab v = good;
  v.tokens['q'] = "<|q|>";
  Expected<BpeTokenizer> r = BpeTokenizer::from_gguf(v);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->byte_id('q'), -1);
  EXPECT_EQ(r->decode(r->encode("qhello q")), "hello ");
}

TEST(IgnoreMerges, WholePieceTokenWinsForLlama3) {
  // Merges that never build "abc" directly, and a token "abc": with ignore_merges (llama3) the
  // piece is that token; without it (gpt2) the merges decide.
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.push_back(gpt2_bytes_to_text(std::string(1, char(b))));
  tokens.push_back("bc");
  tokens.push_back("abc");
  tokens.push_back("ab");
  GgufVocab v;
  v.tokens = tokens;
  v.merges = {"a b", "b c"};  // "abc" is a token, but no merge makes it
  for (const char* pre : {"gpt2", "llama3"}) {
    v.pre = pre;
    Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v);
    ASSERT_TRUE(t.ok()) << t.status().message();
    const std::vector<int32_t> want =
        pre == std::string("llama3") ? std::vector<int32_t>{257} : std::vector<int32_t>{258, 'c'};
    EXPECT_EQ(t->encode("abc"), want) << pre;
  }
}

}  // namespace
}  // namespace longctx::tokenizer
