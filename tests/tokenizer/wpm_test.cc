// The WordPiece ("bert") tokenizer: a small hand-made vocabulary in llama.cpp's GGUF form, with
// expectations worked out by hand from Hugging Face's BERT pipeline (BertNormalizer,
// BertPreTokenizer, WordPiece, WordPiece decoder). The comparison with HF itself on real text is
// in hf_json_test.cc (fixtures) and tests/cli/tokenize_test.py (MiniLM).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "model/checkpoint.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {
namespace {

const std::string kW = "\xe2\x96\x81";  // '▁': a word-initial token

// HF text -> GGUF form, by hand (not wpm_gguf_text).
std::string g(const std::string& hf) {
  if (hf.front() == '[' && hf.back() == ']') return hf;
  if (hf.rfind("##", 0) == 0) return hf.substr(2);
  return kW + hf;
}

const std::vector<std::string> kHfTokens = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",                    // 0-4
    "un", "unaff", "##aff", "##able", "hello",                       // 5-9
    "world", ",", ".", "!", "cafe",                                  // 10-14
    "\xe4\xb8\xad", "\xe6\x96\x87", "##s", "##ing", "run",           // 15-19 中 文
    "##n", "a", "##a", "[", "]",                                     // 20-24
    "cls", "i", "\xc3\xa9", "\xc2\xbf", "\xe1\x84\x92",              // 25-29 é ¿ ᄒ
    "##\xe1\x85\xa1", "##\xe1\x86\xab", "'", "t", "don",             // 30-34 ##ᅡ ##ᆫ
    "Caf", "##\xc3\xa9", "e",                                        // 35-37 ##é
};

GgufVocab vocab(bool lowercase = true, bool strip_accents = true, int max_chars = 100) {
  GgufVocab v;
  v.model = "bert";
  v.pre = "";
  for (const std::string& t : kHfTokens) v.tokens.push_back(g(t));
  v.token_types.assign(v.tokens.size(), static_cast<int32_t>(TokenType::kNormal));
  for (int i = 0; i < 5; ++i) v.token_types[i] = static_cast<int32_t>(TokenType::kControl);
  v.pad = 0, v.unk = 1, v.bos = 2, v.eos = 3;
  v.add_bos = v.add_eos = true;
  v.lowercase = lowercase;
  v.strip_accents = strip_accents;
  v.max_input_chars_per_word = max_chars;
  return v;
}

BpeTokenizer make(const GgufVocab& v = vocab()) {
  Expected<BpeTokenizer> t = BpeTokenizer::from_gguf(v);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return std::move(t.value());
}

using Ids = std::vector<int32_t>;

TEST(WordPiece, GreedyLongestMatchFirst) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode("unaffable"), (Ids{6, 8}));  // unaff ##able, not un ##aff ##able
  EXPECT_EQ(t.encode("unaff"), (Ids{6}));
  EXPECT_EQ(t.encode("hello world"), (Ids{9, 10}));
  EXPECT_EQ(t.encode("running"), (Ids{19, 20, 18}));  // run ##n ##ing
  EXPECT_EQ(t.encode("worlds"), (Ids{10, 17}));
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.encode("  \t\n "), Ids{});
}

TEST(WordPiece, UnknownWords) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode("unx"), (Ids{1}));            // no "##x": the whole word is [UNK]
  EXPECT_EQ(t.encode("xhello hello"), (Ids{1, 9}));  // one [UNK] per word
  EXPECT_EQ(t.encode(std::string(100, 'a')).size(), 100u);  // a ##a ... ##a
  EXPECT_EQ(t.encode(std::string(101, 'a')), (Ids{1}));     // over max_input_chars_per_word
  const BpeTokenizer short_words = make(vocab(true, true, 3));
  EXPECT_EQ(short_words.encode("aaa aaaa"), (Ids{21, 22, 22, 1}));
}

TEST(WordPiece, PunctuationIsItsOwnPiece) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode("hello,world!"), (Ids{9, 11, 10, 13}));
  EXPECT_EQ(t.encode("hello...!"), (Ids{9, 12, 12, 12, 13}));
  EXPECT_EQ(t.encode("\xc2\xbfhello"), (Ids{28, 9}));  // ¿ is Unicode punctuation (Po)
  EXPECT_EQ(t.encode("don't"), (Ids{34, 32, 33}));
  // Special-token text is plain text for encode(), its tokens for encode_special().
  EXPECT_EQ(t.encode("[CLS]"), (Ids{23, 25, 24}));
  EXPECT_EQ(t.encode_special("[CLS]hello[MASK] [SEP]"), (Ids{2, 9, 4, 3}));
}

TEST(WordPiece, ChineseCharactersAreWords) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode("\xe4\xb8\xad\xe6\x96\x87"), (Ids{15, 16}));   // 中文: two words
  EXPECT_EQ(t.encode("a\xe4\xb8\xad" "a"), (Ids{21, 15, 21}));      // a中a
}

TEST(WordPiece, NormalizerLowercasesAndStripsAccents) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode("Caf\xc3\xa9 CAFE\xcc\x81"), (Ids{14, 14}));  // Café, CAFE + U+0301
  EXPECT_EQ(t.encode("\xc3\x89"), (Ids{37}));                      // É -> e
  EXPECT_EQ(t.encode("\xc4\xb0"), (Ids{26}));                      // İ -> I (U+0307 stripped) -> i
  EXPECT_EQ(t.encode("\xed\x95\x9c"), (Ids{29, 30, 31}));          // 한 -> ᄒ ##ᅡ ##ᆫ (NFD)
  EXPECT_EQ(t.encode("\xcc\x81"), Ids{});                          // a lone mark vanishes
  // Cased, accents kept: "Café" is Caf ##é; lowercase without strip_accents keeps é.
  const BpeTokenizer cased = make(vocab(false, false));
  EXPECT_EQ(cased.encode("Caf\xc3\xa9"), (Ids{35, 36}));
  EXPECT_EQ(cased.encode("cafe"), (Ids{14}));
  EXPECT_EQ(cased.encode("Hello"), (Ids{1}));
  const BpeTokenizer lower_only = make(vocab(true, false));
  EXPECT_EQ(lower_only.encode("\xc3\x89"), (Ids{27}));  // É -> é
}

TEST(WordPiece, CleanTextDropsControlCharacters) {
  const BpeTokenizer t = make();
  EXPECT_EQ(t.encode(std::string("hel\0lo\x07", 7)), (Ids{9}));
  EXPECT_EQ(t.encode("hel\xe2\x80\x8blo"), (Ids{9}));       // U+200B (Cf)
  EXPECT_EQ(t.encode("hel\xef\xbf\xbdlo"), (Ids{9}));       // U+FFFD
  EXPECT_EQ(t.encode("hel\xfflo"), (Ids{9}));               // not UTF-8: as U+FFFD
  EXPECT_EQ(t.encode("hello\tworld\r\nhello\xe3\x80\x80world"), (Ids{9, 10, 9, 10}));  // U+3000 is a space
}

TEST(WordPiece, Decode) {
  const BpeTokenizer t = make();
  const Ids ids = t.encode("hello, world! unaffable running");
  EXPECT_EQ(t.decode(ids), "hello, world! unaffable running");
  Ids with = {2};
  with.insert(with.end(), ids.begin(), ids.end());
  with.push_back(3);
  EXPECT_EQ(t.decode(with), "hello, world! unaffable running");
  EXPECT_EQ(t.decode(with, true), "[CLS] hello, world! unaffable running [SEP]");
  EXPECT_EQ(t.decode(Ids{18, 21}), "##ing a");  // HF keeps the prefix of a first continuation
  EXPECT_EQ(t.decode(Ids{34, 32, 33}), "don ' t");
  EXPECT_EQ(t.decode(Ids{1, 9}), "hello");
  EXPECT_EQ(t.decode(Ids{1, 9}, true), "[UNK] hello");
  EXPECT_EQ(t.token_bytes(9), " hello");
  EXPECT_EQ(t.token_bytes(8), "able");
  EXPECT_EQ(t.token_bytes(12), ".");  // HF's cleanup glues " ." to the word before
  EXPECT_EQ(t.token_bytes(2), "");
  EXPECT_FALSE(t.decode_checked(Ids{9, 99}).ok());
}

TEST(WordPiece, FlagsAndSpecials) {
  const BpeTokenizer t = make();
  EXPECT_TRUE(t.add_bos());
  EXPECT_TRUE(t.add_eos());
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 3);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_TRUE(t.is_special(4));
  EXPECT_TRUE(t.merges().empty());
}

void expect_same(const BpeTokenizer& a, const BpeTokenizer& b) {
  const GgufVocab va = a.gguf_vocab(), vb = b.gguf_vocab();
  EXPECT_EQ(va.model, "bert");
  EXPECT_EQ(va.tokens, vb.tokens);
  EXPECT_EQ(va.token_types, vb.token_types);
  EXPECT_EQ(std::make_tuple(va.bos, va.eos, va.pad, va.unk, va.add_bos, va.add_eos),
            std::make_tuple(vb.bos, vb.eos, vb.pad, vb.unk, vb.add_bos, vb.add_eos));
  EXPECT_EQ(std::make_tuple(va.lowercase, va.strip_accents, va.max_input_chars_per_word),
            std::make_tuple(vb.lowercase, vb.strip_accents, vb.max_input_chars_per_word));
  for (const char* s : {"Caf\xc3\xa9 running, unaffable!", "\xc4\xb0 \xed\x95\x9c [CLS]x", "aaaa hello"}) {
    EXPECT_EQ(a.encode(s), b.encode(s)) << s;
    EXPECT_EQ(a.encode_special(s), b.encode_special(s)) << s;
  }
}

TEST(WordPiece, GgufRoundTrip) {
  for (const GgufVocab& v : {vocab(), vocab(false, false, 3), vocab(true, false, 7)}) {
    const BpeTokenizer t = make(v);
    EXPECT_EQ(t.gguf_vocab().tokens, v.tokens);
    const BpeTokenizer back = make(t.gguf_vocab());
    expect_same(t, back);
    // Through a GGUF file: write_tokenizer_keys / read_tokenizer.
    const std::string path = (std::filesystem::temp_directory_path() /
                              ("wpm_test_" + std::to_string(getpid()) + ".gguf")).string();
    ASSERT_TRUE(model::save_tokenizer(path, t).ok());
    Expected<BpeTokenizer> file = model::load_tokenizer(path);
    std::filesystem::remove(path);
    ASSERT_TRUE(file.ok()) << file.status().message();
    expect_same(t, *file);
  }
}

TEST(WordPiece, BadVocabularies) {
  GgufVocab v = vocab();
  v.unk = -1;
  EXPECT_FALSE(BpeTokenizer::from_gguf(v).ok());
  v = vocab();
  v.tokens[9] = g("world");  // a duplicate
  EXPECT_FALSE(BpeTokenizer::from_gguf(v).ok());
  v = vocab();
  v.max_input_chars_per_word = 0;
  EXPECT_FALSE(BpeTokenizer::from_gguf(v).ok());
  v = vocab();
  v.token_types[9] = static_cast<int32_t>(TokenType::kByte);
  EXPECT_FALSE(BpeTokenizer::from_gguf(v).ok());
}

TEST(WordPiece, GgufTextForm) {
  EXPECT_EQ(wpm_gguf_text("hello"), kW + "hello");
  EXPECT_EQ(wpm_gguf_text("##ing"), "ing");
  EXPECT_EQ(wpm_gguf_text("[CLS]"), "[CLS]");
  EXPECT_EQ(wpm_gguf_text("["), kW + "[");
  EXPECT_EQ(wpm_hf_text(kW + "hello"), "hello");
  EXPECT_EQ(wpm_hf_text("ing"), "##ing");
  EXPECT_EQ(wpm_hf_text("[unused0]"), "[unused0]");
  EXPECT_EQ(wpm_gguf_text("##"), "");  // llama.cpp's converter writes "##" as ""
  EXPECT_EQ(wpm_hf_text(""), "##");
}

}  // namespace
}  // namespace longctx::tokenizer
