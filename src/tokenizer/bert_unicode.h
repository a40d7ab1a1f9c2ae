// The Unicode character classes and mappings of the WordPiece ("bert") tokenizer, as Hugging Face
// `tokenizers` defines them for BertNormalizer and BertPreTokenizer. The tables are generated
// (bert_unicode_data.cc, by gen_bert_unicode.py) from Python's unicodedata with HF's answers
// where HF's Rust crates (other Unicode versions) differ, so they agree with the `tokenizers`
// release they were made with for every code point, one character at a time.
#pragma once
#include <string>

namespace longctx::tokenizer::bert_unicode {

// clean_text: removed (U+0000, U+FFFD, categories Cc Cf Co except \t \n \r).
bool is_control(char32_t c);
// clean_text: becomes ' ' (\t \n \r, Zs and the other White_Space characters that are not removed).
bool is_space(char32_t c);
// handle_chinese_chars: gets a space on each side (HF's CJK ideograph ranges).
bool is_chinese(char32_t c);
// BertPreTokenizer: its own piece (ASCII punctuation and categories P*).
bool is_punct(char32_t c);
// strip_accents: appends c's NFD without its nonspacing marks (Mn) to `out` (nothing for a mark).
void strip_accents(char32_t c, std::u32string& out);
// lowercase: appends Rust's char::to_lowercase(c) (one to three characters).
void lowercase(char32_t c, std::u32string& out);

}  // namespace longctx::tokenizer::bert_unicode
