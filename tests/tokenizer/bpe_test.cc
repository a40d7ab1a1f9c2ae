// Tests for the byte-level BPE tokenizer and its pre-tokenizer. Expectations come from hand-worked
// examples, from std::regex running GPT-2's pattern, and from a naive trainer/encoder written
// here (recount every pair for every merge; apply merges by scanning), never from the code under
// test.
#include "tokenizer/bpe.h"

// GCC 12 reports a false -Wmaybe-uninitialized inside libstdc++'s <regex> when building with
// -fsanitize; the reference pre-tokenizer below needs std::regex.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/rng.h"
#include "tokenizer/pretokenize.h"

namespace longctx::tokenizer {
namespace {

using namespace std::string_literals;

// ---------------------------------------------------------------------------------------------
// Test data.

std::string random_bytes(Rng& rng, size_t n) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng.below(256));
  return s;
}

// Bytes drawn mostly from the characters the pre-tokenizer treats specially, so contractions,
// space handling and class boundaries all occur often in short strings.
std::string tricky_bytes(Rng& rng, size_t n) {
  static const std::string kAlphabet =
      "'''sstreevllmdAZaz09 \n\t\r\v\f.,!-\x00\x01\x7f\x80\xbf\xc3\xa9\xe6\x97\xa5\xff"s;
  std::string s(n, '\0');
  for (char& c : s) {
    c = rng.below(8) == 0 ? static_cast<char>(rng.below(256))
                          : kAlphabet[rng.below(kAlphabet.size())];
  }
  return s;
}

// English-like text: Zipf-distributed words (real ones and generated ones), capitals, verse
// numbers, punctuation, contractions, a few UTF-8 words, line breaks and blank lines.
std::string generated_corpus(size_t bytes, uint64_t seed) {
  static const char* kCommon[] = {
      "the",   "and",     "of",       "to",     "that",      "in",    "he",    "shall",  "unto",
      "for",   "i",       "his",      "a",      "lord",      "they",  "be",    "is",     "him",
      "not",   "them",    "it",       "with",   "all",       "thou",  "thy",   "was",    "god",
      "which", "my",      "me",       "said",   "but",       "ye",    "their", "have",   "will",
      "thee",  "from",    "as",       "are",    "when",      "this",  "out",   "were",   "upon",
      "man",   "by",      "you",      "israel", "king",      "son",   "up",    "there",  "hath",
      "then",  "people",  "came",     "had",    "house",     "into",  "on",    "her",    "come",
      "one",   "we",      "children", "s",      "before",    "your",  "also",  "day",    "land",
      "men",   "against", "shalt",    "if",     "let",       "go",    "hand",  "us",     "café",
      "naïve", "über",    "日本",     "señor",  "jerusalem", "david", "moses", "saying", "away"};
  Rng rng(seed);
  const char* kSyllables[] = {"ka", "lo", "mer", "th", "an",  "ish", "ur", "el", "qu", "ion",
                              "st", "ra", "be",  "ne", "dor", "ay",  "il", "ow", "sh", "ek"};
  std::vector<std::string> words(kCommon, kCommon + std::size(kCommon));
  while (words.size() < 3000) {
    std::string w;
    const int syllables = 1 + static_cast<int>(rng.below(4));
    for (int k = 0; k < syllables; ++k) w += kSyllables[rng.below(std::size(kSyllables))];
    words.push_back(w);
  }
  // Zipf(1) sampling through the cumulative weights.
  std::vector<double> cumulative(words.size());
  double total = 0;
  for (size_t i = 0; i < words.size(); ++i) cumulative[i] = total += 1.0 / (i + 1);
  auto pick = [&]() -> const std::string& {
    const double u = rng.uniform() * total;
    return words[std::lower_bound(cumulative.begin(), cumulative.end(), u) - cumulative.begin()];
  };

  std::string out;
  int verse = 1;
  while (out.size() < bytes) {
    out += "  " + std::to_string(verse++) + " ";
    const int sentences = 1 + static_cast<int>(rng.below(3));
    for (int s = 0; s < sentences; ++s) {
      const int n = 4 + static_cast<int>(rng.below(14));
      for (int k = 0; k < n; ++k) {
        std::string w = pick();
        if (k == 0 && w[0] >= 'a' && w[0] <= 'z') w[0] = static_cast<char>(w[0] - 'a' + 'A');
        if (k > 0) out += ' ';
        out += w;
        if (rng.below(20) == 0) out += "'s";
        if (k + 1 < n && rng.below(9) == 0) out += rng.below(3) == 0 ? ";" : ",";
      }
      out += rng.below(6) == 0 ? "?" : ".";
      if (s + 1 < sentences) out += ' ';
    }
    out += rng.below(10) == 0 ? "\n\n" : "\n";
  }
  return out;
}

std::string read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

BpeTokenizer train_or_die(std::string_view text, int vocab_size) {
  TrainOptions opt;
  opt.vocab_size = vocab_size;
  Expected<BpeTokenizer> t = BpeTokenizer::train(text, opt);
  if (!t.ok()) {
    ADD_FAILURE() << t.status().message();
    std::abort();
  }
  return std::move(t).value();
}

// ---------------------------------------------------------------------------------------------
// Independent references.

// GPT-2's pattern with our byte classes, run by std::regex (a backtracking ECMAScript engine,
// where the first matching alternative wins, as in Python). Fine for short strings only.
std::vector<std::string> regex_pieces(const std::string& s) {
  static const std::regex re(
      "'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z\\x80-\\xff]+| ?[0-9]+| ?[^\\s A-Za-z0-9\\x80-\\xff]+|"
      "\\s+(?!\\S)|\\s+",
      std::regex::ECMAScript);
  std::vector<std::string> out;
  auto it = s.cbegin();
  while (it != s.cend()) {
    std::smatch m;
    if (!std::regex_search(it, s.cend(), m, re, std::regex_constants::match_continuous) ||
        m.length() == 0) {
      ADD_FAILURE() << "reference regex failed on " << printable(s);
      return out;
    }
    out.push_back(m.str());
    it += m.length();
  }
  return out;
}

std::vector<std::string> split(std::string_view s) {
  std::vector<std::string> out;
  for (std::string_view p : pretokenize(s)) out.emplace_back(p);
  return out;
}

// Textbook BPE training: recount all pairs before every merge.
std::vector<std::pair<int32_t, int32_t>> naive_train(std::string_view text, int merges) {
  std::map<std::string, int64_t> freq;
  for (std::string_view p : pretokenize(text)) ++freq[std::string(p)];
  std::vector<std::pair<std::vector<int32_t>, int64_t>> words;
  for (const auto& [w, f] : freq) {
    std::vector<int32_t> syms;
    for (unsigned char c : w) syms.push_back(c);
    words.emplace_back(syms, f);
  }
  std::vector<std::pair<int32_t, int32_t>> out;
  for (int m = 0; m < merges; ++m) {
    std::map<std::pair<int32_t, int32_t>, int64_t> counts;
    for (const auto& [syms, f] : words) {
      for (size_t i = 0; i + 1 < syms.size(); ++i) counts[{syms[i], syms[i + 1]}] += f;
    }
    if (counts.empty()) break;
    std::pair<int32_t, int32_t> best{};
    int64_t best_count = 0;
    for (const auto& [p, c] : counts) {  // ascending pairs: strict > keeps the smallest on ties
      if (c > best_count) best = p, best_count = c;
    }
    const int32_t x = 256 + m;
    for (auto& [syms, f] : words) {
      std::vector<int32_t> next;
      for (size_t i = 0; i < syms.size();) {
        if (i + 1 < syms.size() && syms[i] == best.first && syms[i + 1] == best.second) {
          next.push_back(x), i += 2;
        } else {
          next.push_back(syms[i++]);
        }
      }
      syms = next;
    }
    out.push_back(best);
  }
  return out;
}

// GPT-2's encoder.py loop: merge the lowest-ranked adjacent pair everywhere, repeat.
std::vector<int32_t> naive_encode(const BpeTokenizer& t, std::string_view text) {
  std::map<std::pair<int32_t, int32_t>, size_t> rank;
  for (size_t r = 0; r < t.merges().size(); ++r) {
    rank.emplace(std::make_pair(t.merges()[r].left, t.merges()[r].right), r);
  }
  std::vector<int32_t> out;
  for (std::string_view piece : pretokenize(text)) {
    std::vector<int32_t> syms;
    for (unsigned char c : piece) syms.push_back(t.byte_id(c));
    while (syms.size() > 1) {
      size_t best = std::numeric_limits<size_t>::max();
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        auto it = rank.find({syms[i], syms[i + 1]});
        if (it != rank.end()) best = std::min(best, it->second);
      }
      if (best == std::numeric_limits<size_t>::max()) break;
      const Merge& m = t.merges()[best];
      std::vector<int32_t> next;
      for (size_t i = 0; i < syms.size();) {
        if (i + 1 < syms.size() && syms[i] == m.left && syms[i + 1] == m.right) {
          next.push_back(m.result), i += 2;
        } else {
          next.push_back(syms[i++]);
        }
      }
      syms = next;
    }
    out.insert(out.end(), syms.begin(), syms.end());
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pre-tokenizer.

TEST(Pretokenize, HandWorkedSplits) {
  const std::vector<std::pair<std::string, std::vector<std::string>>> cases = {
      {"Hello world's  end\n\n", {"Hello", " world", "'s", " ", " end", "\n\n"}},
      {"", {}},
      {"I'll've don't", {"I", "'ll", "'ve", " don", "'t"}},
      {"He'S", {"He", "'", "S"}},  // contractions are lowercase only
      {" 's", {" '", "s"}},
      {"'", {"'"}},
      {"2024's", {"2024", "'s"}},
      {"abc123 456", {"abc", "123", " 456"}},
      {"a  b", {"a", " ", " b"}},
      {"a \n b", {"a", " \n", " b"}},
      {"x\n\ny", {"x", "\n", "\n", "y"}},
      {"\t\tfoo", {"\t", "\t", "foo"}},
      {"x   \n", {"x", "   \n"}},
      {"   ", {"   "}},
      {"?!... ok", {"?!...", " ok"}},
      {"x = 3.14;", {"x", " =", " 3", ".", "14", ";"}},
      {"caf\xc3\xa9 na\xc3\xafve", {"caf\xc3\xa9", " na\xc3\xafve"}},
      {"\xff\xfe\x00\x01"
       "abc"s,
       {"\xff\xfe", "\x00\x01"s, "abc"}},
      {"!!'s", {"!!'", "s"}},  // the "other" run is greedy and swallows the apostrophe
      {"  1", {" ", " 1"}},
  };
  for (const auto& [input, expected] : cases) {
    EXPECT_EQ(split(input), expected) << "input: " << printable(input);
  }
}

TEST(Pretokenize, MatchesGpt2RegexOnRandomStrings) {
  Rng rng(7);
  for (int i = 0; i < 3000; ++i) {
    const std::string s = tricky_bytes(rng, rng.below(40));
    ASSERT_EQ(split(s), regex_pieces(s)) << "input: " << printable(s);
  }
}

TEST(Pretokenize, PiecesConcatenateToInput) {
  Rng rng(11);
  for (int i = 0; i < 2000; ++i) {
    const std::string s =
        i % 2 ? random_bytes(rng, rng.below(300)) : tricky_bytes(rng, rng.below(300));
    std::string joined;
    for (std::string_view p : pretokenize(s)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, s);
  }
}

// ---------------------------------------------------------------------------------------------
// Training.

TEST(BpeTrain, HandWorkedMerges) {
  // Pieces: "abab" x1, " abab" x1, " ab" x1.
  //   counts (a,b)=5 (' ',a)=2 (b,a)=2           -> merge 256 = "ab"
  //   words  [ab ab] [' ' ab ab] [' ' ab]; counts (' ',ab)=2 (ab,ab)=2; tie -> smaller pair
  //   (32,256) < (256,256)                        -> merge 257 = " ab"
  //   words  [ab ab] [" ab" ab] [" ab"]; counts (256,256)=1 (257,256)=1 -> 258 = "abab"
  //   words  [abab] [" ab" ab] [" ab"]; counts (257,256)=1          -> 259 = " abab"
  BpeTokenizer t = train_or_die("abab abab ab", 256 + 3 + 4);
  ASSERT_EQ(t.merges().size(), 4u);
  EXPECT_EQ(t.merges()[0].left, 'a');
  EXPECT_EQ(t.merges()[0].right, 'b');
  EXPECT_EQ(t.merges()[1].left, ' ');
  EXPECT_EQ(t.merges()[1].right, 256);
  EXPECT_EQ(t.merges()[2].left, 256);
  EXPECT_EQ(t.merges()[2].right, 256);
  EXPECT_EQ(t.merges()[3].left, 257);
  EXPECT_EQ(t.merges()[3].right, 256);
  EXPECT_EQ(t.token_bytes(256), "ab");
  EXPECT_EQ(t.token_bytes(257), " ab");
  EXPECT_EQ(t.token_bytes(258), "abab");
  EXPECT_EQ(t.token_bytes(259), " abab");
  EXPECT_EQ(t.vocab_size(), 263);
  EXPECT_EQ(t.encode("ab abab"), (std::vector<int32_t>{256, 259}));
  EXPECT_EQ(t.encode("ba"), (std::vector<int32_t>{'b', 'a'}));
  EXPECT_EQ(t.encode("aba b"), (std::vector<int32_t>{256, 'a', ' ', 'b'}));

  // Asking for more than the text can give stops early at the same merges.
  BpeTokenizer big = train_or_die("abab abab ab", 300);
  EXPECT_EQ(big.vocab_size(), 263);
  EXPECT_EQ(big.token_bytes(259), " abab");
  EXPECT_EQ(big.bos_id(), 260);
}

TEST(BpeTrain, OverlappingPairsCountedOnce) {
  // Pieces "aaa" and " aaa". (a,a) occurs twice in each, but merging left to right turns "aaa"
  // into [aa a], so after merge 256 = "aa" the counts are (256,'a')=2 and (' ',256)=1.
  BpeTokenizer t = train_or_die("aaa aaa", 256 + 3 + 3);
  ASSERT_EQ(t.merges().size(), 3u);
  EXPECT_EQ(t.token_bytes(256), "aa");
  EXPECT_EQ(t.token_bytes(257), "aaa");
  EXPECT_EQ(t.merges()[1].left, 256);
  EXPECT_EQ(t.merges()[1].right, 'a');
  EXPECT_EQ(t.token_bytes(258), " aaa");
  EXPECT_EQ(t.encode("aaaaa"), (std::vector<int32_t>{256, 257}));  // [aa][aa]a -> aa, then (aa,a)
}

TEST(BpeTrain, MatchesNaiveTrainer) {
  Rng rng(5);
  const std::string text = generated_corpus(30000, 3) + tricky_bytes(rng, 3000);
  const int merges = 400;
  BpeTokenizer t = train_or_die(text, 256 + 3 + merges);
  const auto expected = naive_train(text, merges);
  ASSERT_EQ(t.merges().size(), expected.size());
  for (size_t r = 0; r < expected.size(); ++r) {
    ASSERT_EQ(t.merges()[r].left, expected[r].first) << "merge " << r;
    ASSERT_EQ(t.merges()[r].right, expected[r].second) << "merge " << r;
    ASSERT_EQ(t.merges()[r].result, static_cast<int32_t>(256 + r));
  }
}

TEST(BpeTrain, RejectsBadOptions) {
  TrainOptions opt;
  opt.vocab_size = 259;
  EXPECT_FALSE(BpeTokenizer::train("hello", opt).ok());
  opt.vocab_size = (1 << 20) + 1;
  EXPECT_FALSE(BpeTokenizer::train("hello", opt).ok());
  opt.vocab_size = 4096;
  Expected<BpeTokenizer> empty = BpeTokenizer::train("", opt);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
  opt.vocab_size = 260;
  EXPECT_TRUE(BpeTokenizer::train("hello", opt).ok());
  opt.vocab_size = 1 << 20;
  EXPECT_TRUE(BpeTokenizer::train("x", opt).ok());  // no pairs: a valid byte-only tokenizer
}

TEST(BpeTrain, ReportsProgress) {
  TrainOptions opt;
  opt.vocab_size = 259 + 250;
  std::vector<std::pair<int, int>> calls;
  opt.progress = [&](int done, int total) { calls.emplace_back(done, total); };
  ASSERT_TRUE(BpeTokenizer::train(generated_corpus(20000, 1), opt).ok());
  EXPECT_EQ(calls, (std::vector<std::pair<int, int>>{{100, 250}, {200, 250}, {250, 250}}));
}

// ---------------------------------------------------------------------------------------------
// Encoding and decoding.

TEST(BpeEncode, RoundTripsRandomBytes) {
  BpeTokenizer t = train_or_die(generated_corpus(20000, 2), 600);
  Rng rng(13);
  for (int i = 0; i < 4000; ++i) {
    const std::string s =
        i % 2 ? random_bytes(rng, rng.below(200)) : tricky_bytes(rng, rng.below(200));
    const std::vector<int32_t> ids = t.encode(s);
    ASSERT_EQ(t.decode(ids), s) << printable(s);
    for (int32_t id : ids) ASSERT_FALSE(t.is_special(id));
  }
  // One long piece (every byte >= 0x80 is a letter) and a long random string.
  std::string letters(200000, '\0');
  for (char& c : letters) c = static_cast<char>(0x80 + rng.below(128));
  EXPECT_EQ(t.decode(t.encode(letters)), letters);
  const std::string noise = random_bytes(rng, 200000);
  EXPECT_EQ(t.decode(t.encode(noise)), noise);
}

TEST(BpeEncode, MatchesNaiveEncoder) {
  const std::string text = generated_corpus(60000, 4);
  BpeTokenizer t = train_or_die(text, 1500);
  EXPECT_EQ(t.encode(text.substr(0, 20000)), naive_encode(t, text.substr(0, 20000)));
  Rng rng(17);
  for (int i = 0; i < 300; ++i) {
    const std::string s = tricky_bytes(rng, rng.below(100));
    ASSERT_EQ(t.encode(s), naive_encode(t, s)) << printable(s);
  }
  const std::string other = generated_corpus(5000, 99);  // words split differently
  EXPECT_EQ(t.encode(other), naive_encode(t, other));

  // A two-letter alphabet gives long runs and overlapping pairs ("aaa": which "aa" merges first
  // decides the result), where the order of equal-rank merges matters.
  std::string ab;
  for (int i = 0; i < 50000; ++i) ab += "ab "[rng.below(i % 7 == 0 ? 3 : 2)];
  BpeTokenizer u = train_or_die(ab, 600);
  for (int i = 0; i < 500; ++i) {
    std::string s;
    const size_t n = rng.below(60);
    for (size_t k = 0; k < n; ++k) s += "aab "[rng.below(4)];
    ASSERT_EQ(u.encode(s), naive_encode(u, s)) << s;
  }
}

TEST(BpeEncode, EncodeAppendAppends) {
  BpeTokenizer t = train_or_die(generated_corpus(10000, 5), 400);
  std::vector<int32_t> out = {7, 8};
  t.encode_append("the king", out);
  std::vector<int32_t> expected = {7, 8};
  for (int32_t id : t.encode("the king")) expected.push_back(id);
  EXPECT_EQ(out, expected);
}

TEST(BpeEncode, RoundTripsGeneratedCorpusAndCompresses) {
  const std::string text = generated_corpus(400000, 6);
  BpeTokenizer t = train_or_die(text, 4096);
  EXPECT_EQ(t.vocab_size(), 4096);
  const std::vector<int32_t> ids = t.encode(text);
  EXPECT_EQ(t.decode(ids), text);
  const double bytes_per_token = static_cast<double>(text.size()) / ids.size();
  std::printf("generated corpus: %zu bytes -> %zu tokens (%.2f bytes/token)\n", text.size(),
              ids.size(), bytes_per_token);
  EXPECT_GT(bytes_per_token, 3.0);
}

TEST(BpeEncode, RealCorpus) {
  const char* path = std::getenv("LONGCTX_CORPUS");
  if (path == nullptr || path[0] == '\0') GTEST_SKIP() << "set LONGCTX_CORPUS to a text file";
  const std::string text = read_file(path);
  ASSERT_FALSE(text.empty()) << "cannot read " << path;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  BpeTokenizer t = train_or_die(text, 4096);
  const auto t1 = Clock::now();
  const std::vector<int32_t> ids = t.encode(text);
  const auto t2 = Clock::now();
  const std::string back = t.decode(ids);
  const auto t3 = Clock::now();
  const auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };
  std::printf(
      "corpus %s: %zu bytes, vocab %d: train %.2f s, encode %.2f s, decode %.3f s, %zu tokens, "
      "%.2f bytes/token\n",
      path, text.size(), t.vocab_size(), secs(t1 - t0), secs(t2 - t1), secs(t3 - t2), ids.size(),
      static_cast<double>(text.size()) / ids.size());
  EXPECT_TRUE(back == text) << "round trip differs";
  EXPECT_GT(static_cast<double>(text.size()) / ids.size(), 3.0);
  for (int32_t id : ids) ASSERT_FALSE(t.is_special(id));
}

TEST(BpeDecode, CheckedDecodeRejectsBadIds) {
  BpeTokenizer t = train_or_die("hello hello world", 270);
  const std::vector<int32_t> good = {'h', 'i'};
  ASSERT_TRUE(t.decode_checked(good).ok());
  EXPECT_EQ(t.decode_checked(good).value(), "hi");
  for (int32_t bad : {-1, t.vocab_size(), std::numeric_limits<int32_t>::max()}) {
    const std::vector<int32_t> ids = {'h', bad};
    Expected<std::string> r = t.decode_checked(ids);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("position 1"), std::string::npos) << r.status().message();
  }
}

TEST(BpeDecodeDeathTest, UncheckedDecodeChecksIds) {
  BpeTokenizer t = train_or_die("hello hello world", 270);
  const std::vector<int32_t> ids = {t.vocab_size()};
  EXPECT_DEATH(t.decode(ids), "CHECK failed");
}

// ---------------------------------------------------------------------------------------------
// Special tokens.

TEST(BpeSpecials, LastThreeIdsDecodeToNothingAndAreNeverProduced) {
  BpeTokenizer t = train_or_die(generated_corpus(20000, 8), 1000);
  EXPECT_EQ(t.vocab_size(), 1000);
  EXPECT_EQ(t.bos_id(), 997);
  EXPECT_EQ(t.eos_id(), 998);
  EXPECT_EQ(t.pad_id(), 999);
  const std::vector<int32_t> specials = {t.bos_id(), t.eos_id(), t.pad_id()};
  EXPECT_EQ(t.decode(specials), "");
  for (int32_t id : specials) EXPECT_EQ(t.token_bytes(id), "");
  const std::string text = "<|bos|>hello<|eos|> <|pad|>";
  const std::vector<int32_t> ids = t.encode(text);
  for (int32_t id : ids) EXPECT_FALSE(t.is_special(id));
  EXPECT_EQ(t.decode(ids), text);
  const std::vector<int32_t> mixed = {t.bos_id(), 'h', 'i', t.eos_id()};
  EXPECT_EQ(t.decode(mixed), "hi");
}

// ---------------------------------------------------------------------------------------------
// GGUF convention.

TEST(Gpt2Alphabet, KnownCharacters) {
  // Values from GPT-2's bytes_to_unicode: printable bytes map to themselves, the others to
  // U+0100 + (their index among the non-printable bytes).
  EXPECT_EQ(gpt2_bytes_to_text(" "), "\xc4\xa0");      // U+0120 'Ġ'
  EXPECT_EQ(gpt2_bytes_to_text("\n"), "\xc4\x8a");     // U+010A 'Ċ'
  EXPECT_EQ(gpt2_bytes_to_text("\x00"s), "\xc4\x80");  // U+0100 'Ā'
  EXPECT_EQ(gpt2_bytes_to_text("\x7f"), "\xc4\xa1");   // U+0121 'ġ'
  EXPECT_EQ(gpt2_bytes_to_text("\xa0"), "\xc5\x82");   // U+0142 'ł'
  EXPECT_EQ(gpt2_bytes_to_text("\xad"), "\xc5\x83");   // U+0143 'Ń'
  EXPECT_EQ(gpt2_bytes_to_text("\xe9"), "\xc3\xa9");   // U+00E9 'é' keeps its code point
  EXPECT_EQ(gpt2_bytes_to_text("A~!"), "A~!");
  std::string all;
  for (int b = 0; b < 256; ++b) all += static_cast<char>(b);
  Expected<std::string> back = gpt2_text_to_bytes(gpt2_bytes_to_text(all));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back.value(), all);
  EXPECT_FALSE(gpt2_text_to_bytes(" ").ok());             // space is not in the alphabet
  EXPECT_FALSE(gpt2_text_to_bytes("\xe4\xb8\xad").ok());  // U+4E2D
  EXPECT_FALSE(gpt2_text_to_bytes("\xc4").ok());          // truncated
  EXPECT_FALSE(gpt2_text_to_bytes("\xc0\x80").ok());      // overlong
  EXPECT_FALSE(gpt2_text_to_bytes("\xff").ok());
}

TEST(BpeGguf, HandWorkedExport) {
  BpeTokenizer t = train_or_die("abab abab ab", 263);
  const std::vector<std::string> tokens = t.gguf_tokens();
  ASSERT_EQ(tokens.size(), 263u);
  EXPECT_EQ(tokens[' '], "\xc4\xa0");
  EXPECT_EQ(tokens['a'], "a");
  EXPECT_EQ(tokens[257],
            "\xc4\xa0"
            "ab");
  EXPECT_EQ(tokens[260], "<|bos|>");
  EXPECT_EQ(tokens[261], "<|eos|>");
  EXPECT_EQ(tokens[262], "<|pad|>");
  EXPECT_EQ(t.gguf_merges(), (std::vector<std::string>{"a b", "\xc4\xa0 ab", "ab ab",
                                                       "\xc4\xa0"
                                                       "ab ab"}));
  std::vector<int32_t> types(263, 1);
  types[260] = types[261] = types[262] = 3;
  EXPECT_EQ(t.gguf_token_types(), types);
}

TEST(BpeGguf, RoundTripGivesIdenticalEncodings) {
  const std::string text = generated_corpus(100000, 9);
  BpeTokenizer t = train_or_die(text, 2000);
  Expected<BpeTokenizer> loaded =
      BpeTokenizer::from_gguf(t.gguf_tokens(), t.gguf_merges(), t.bos_id(), t.eos_id(), t.pad_id());
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  const BpeTokenizer& u = loaded.value();
  EXPECT_EQ(u.vocab_size(), t.vocab_size());
  EXPECT_EQ(u.gguf_tokens(), t.gguf_tokens());
  EXPECT_EQ(u.gguf_merges(), t.gguf_merges());
  EXPECT_EQ(u.gguf_token_types(), t.gguf_token_types());
  EXPECT_EQ(u.encode(text), t.encode(text));
  Rng rng(21);
  for (int i = 0; i < 500; ++i) {
    const std::string s = random_bytes(rng, rng.below(100));
    ASSERT_EQ(u.encode(s), t.encode(s));
  }
  for (int32_t id = 0; id < t.vocab_size(); ++id) ASSERT_EQ(u.token_bytes(id), t.token_bytes(id));
}

TEST(BpeGguf, AcceptsOtherLayouts) {
  // A permuted vocabulary (bytes not at their own ids, one shared special, like GPT-2's
  // <|endoftext|>) encodes to the permuted ids.
  BpeTokenizer t = train_or_die("abab abab ab", 263);
  std::vector<std::string> tokens = t.gguf_tokens();
  tokens.pop_back();
  tokens.pop_back();                           // keep <|bos|> at 260 as the one special
  std::reverse(tokens.begin(), tokens.end());  // id i -> 260 - i
  Expected<BpeTokenizer> u = BpeTokenizer::from_gguf(tokens, t.gguf_merges(), 0, 0, 0);
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_EQ(u.value().vocab_size(), 261);
  EXPECT_EQ(u.value().byte_id('a'), 260 - 'a');
  EXPECT_EQ(u.value().encode("ab abab"), (std::vector<int32_t>{260 - 256, 260 - 259}));
  EXPECT_EQ(u.value().decode(std::vector<int32_t>{0, 260 - 259}), " abab");
}

TEST(BpeGguf, FromGgufRejectsMalformedInput) {
  BpeTokenizer t = train_or_die("abab abab ab", 263);
  const std::vector<std::string> tokens = t.gguf_tokens();
  const std::vector<std::string> merges = t.gguf_merges();
  const int32_t bos = 260, eos = 261, pad = 262;
  ASSERT_TRUE(BpeTokenizer::from_gguf(tokens, merges, bos, eos, pad).ok());

  struct Case {
    const char* what;
    std::vector<std::string> tokens;
    std::vector<std::string> merges;
    int32_t bos, eos, pad;
    const char* message_part;
  };
  std::vector<Case> cases;
  auto with_merge = [&](std::string m) {
    std::vector<std::string> ms = merges;
    ms.push_back(std::move(m));
    return ms;
  };
  auto with_token = [&](size_t id, std::string s) {
    std::vector<std::string> ts = tokens;
    ts[id] = std::move(s);
    return ts;
  };
  cases.push_back({"no space", tokens, with_merge("ab"), bos, eos, pad, "one space"});
  cases.push_back({"two spaces", tokens, with_merge("a  b"), bos, eos, pad, "one space"});
  cases.push_back({"leading space", tokens, with_merge(" ab"), bos, eos, pad, "one space"});
  cases.push_back({"trailing space", tokens, with_merge("ab "), bos, eos, pad, "one space"});
  cases.push_back({"three parts", tokens, with_merge("a b c"), bos, eos, pad, "one space"});
  cases.push_back({"empty merge", tokens, with_merge(""), bos, eos, pad, "one space"});
  cases.push_back({"unknown left", tokens, with_merge("zz a"), bos, eos, pad, "not a token"});
  cases.push_back({"unknown right", tokens, with_merge("a zz"), bos, eos, pad, "not a token"});
  cases.push_back({"join not a token", tokens, with_merge("b a"), bos, eos, pad, "not a token"});
  cases.push_back({"repeated merge", tokens, with_merge("a b"), bos, eos, pad, "repeats"});
  cases.push_back({"special in merge", tokens, with_merge("<|bos|> a"), bos, eos, pad, "special"});
  cases.push_back({"duplicate token", with_token(258, "ab"), merges, bos, eos, pad, "both"});
  cases.push_back({"empty token", with_token(258, ""), merges, bos, eos, pad, "empty"});
  cases.push_back({"raw space", with_token(258, "a b"), merges, bos, eos, pad, "alphabet"});
  cases.push_back({"bad utf8", with_token(258, "\xc4"), merges, bos, eos, pad, "UTF-8"});
  cases.push_back({"cjk", with_token(258, "\xe4\xb8\xad"), merges, bos, eos, pad, "U+4E2D"});
  cases.push_back({"missing byte", with_token('q', "<|q|>"), merges, bos, eos, pad, "byte 113"});
  cases.push_back({"bos negative", tokens, merges, -1, eos, pad, "bos id -1"});
  cases.push_back({"eos too big", tokens, merges, bos, 263, pad, "eos id 263"});
  cases.push_back({"pad huge", tokens, merges, bos, eos, 1 << 30, "pad id"});
  cases.push_back({"special is a byte", tokens, merges, 'a', eos, pad, "single-byte"});
  cases.push_back({"special in merges", tokens, merges, 256, eos, pad, "special"});
  cases.push_back({"no tokens", {}, {}, 0, 0, 0, "empty"});
  for (const Case& c : cases) {
    Expected<BpeTokenizer> r = BpeTokenizer::from_gguf(c.tokens, c.merges, c.bos, c.eos, c.pad);
    ASSERT_FALSE(r.ok()) << c.what;
    EXPECT_NE(r.status().message().find(c.message_part), std::string::npos)
        << c.what << ": " << r.status().message();
    EXPECT_EQ(r.status().message().rfind("bpe: ", 0), 0u) << c.what << ": " << r.status().message();
  }
}

TEST(BpeGguf, FromGgufSurvivesGarbage) {
  // Random edits of a valid vocabulary must give either an error or a tokenizer that round-trips,
  // never a crash (run under ASan/UBSan too). Some edits keep it valid (swapping two tokens or
  // two merges, dropping a merge), the others usually break it (a changed byte, a long string).
  BpeTokenizer t = train_or_die(generated_corpus(5000, 10), 400);
  const std::vector<std::string> tokens = t.gguf_tokens();
  const std::vector<std::string> merges = t.gguf_merges();
  Rng rng(23);
  int accepted = 0;
  const int kTrials = 400;
  for (int i = 0; i < kTrials; ++i) {
    std::vector<std::string> ts = tokens, ms = merges;
    const int edits = 1 + static_cast<int>(rng.below(3));
    for (int k = 0; k < edits; ++k) {
      switch (rng.below(6)) {
        case 0:
          std::swap(ts[rng.below(ts.size() - 3)], ts[rng.below(ts.size() - 3)]);
          break;
        case 1:
          std::swap(ms[rng.below(ms.size())], ms[rng.below(ms.size())]);
          break;
        case 2:
          ms.erase(ms.begin() + rng.below(ms.size()));
          break;
        case 3: {
          std::string& s = rng.below(2) ? ts[rng.below(ts.size())] : ms[rng.below(ms.size())];
          if (!s.empty()) s[rng.below(s.size())] = static_cast<char>(rng.below(256));
          break;
        }
        case 4: {
          std::string& s = rng.below(2) ? ts[rng.below(ts.size())] : ms[rng.below(ms.size())];
          s = random_bytes(rng, rng.below(8));
          break;
        }
        default:
          ts[rng.below(ts.size())] += random_bytes(rng, 1 + rng.below(3));
          break;
      }
    }
    const int32_t n = static_cast<int32_t>(ts.size());
    Expected<BpeTokenizer> r = BpeTokenizer::from_gguf(ts, ms, n - 3, n - 2, n - 1);
    if (!r.ok()) continue;
    ++accepted;
    const std::string s = random_bytes(rng, 64) + generated_corpus(200, i);
    ASSERT_EQ(r.value().decode(r.value().encode(s)), s);
  }
  std::printf("edited vocabularies accepted: %d of %d\n", accepted, kTrials);
  EXPECT_GT(accepted, 0);
  EXPECT_LT(accepted, kTrials);
}

}  // namespace
}  // namespace longctx::tokenizer
