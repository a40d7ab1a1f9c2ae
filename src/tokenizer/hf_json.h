// Hugging Face tokenizer files -> GgufVocab: reads a `tokenizers` tokenizer.json (and, when there
// is one, the transformers tokenizer_config.json beside it) into the GGUF tokenizer keys that
// BpeTokenizer::from_gguf loads, the way llama.cpp's convert_hf_to_gguf.py would write them.
//
// Supported: model.type "BPE" (dropout, continuing_subword_prefix and end_of_word_suffix unset)
// in two families, and "WordPiece":
//   Byte-level BPE -> model "gpt2". No normalizer, a ByteLevel decoder, and a pre-tokenizer that
//     is one of longctx's regex families (pretokenize_regex.cc), found by comparing regex strings:
//       ByteLevel(use_regex=true)                                  -> "gpt-2"
//       Sequence[Digits(individual_digits=true), ByteLevel(use_regex=true)] -> "smollm"
//       Sequence[Split(Regex R, Isolated)..., ByteLevel(use_regex=false)]   -> the name whose
//         regex list is R... (Llama 3's -> "llama-bpe", or "dbrx" without ignore_merges; Qwen2's
//         -> "qwen2"; ...)
//     (Digits(individual_digits=true) counts as the regex \p{N}, ByteLevel(use_regex=true) as
//     GPT-2's regex after the others.) model.ignore_merges must be what that name implies
//     (true only for Llama 3's names). ByteLevel's add_prefix_space must be false.
//     Vocabulary text is GPT-2's byte alphabet (Ġ for a space), as in the GGUF.
//   SentencePiece-style BPE -> model "llama". byte_fallback true and either the normalizer
//     Sequence[Prepend("▁"), Replace(" ", "▁")] (add_space_prefix; without the Prepend: not) and
//     no pre-tokenizer, or no normalizer and the pre-tokenizer
//     Metaspace(prepend_scheme="never", split=false) (add_space_prefix false); the decoder
//     Replace("▁", " ") + ByteFallback (+ Fuse), with Strip(" ", 1, 0) exactly when
//     add_space_prefix. The "llama" model has no merges but scores, and merges every split of a
//     token into two tokens, highest score of the merged token first (spm.cc); each token gets
//     score -(rank of the first merge that produces it), the others (characters, <0xXX> bytes,
//     specials) a score below all of those, and the load is refused unless the merges that
//     those scores give are exactly model.merges, in order (true for vocabularies converted
//     from SentencePiece, whose merges are made that way). <0xXX> tokens get type 6 (byte).
//   WordPiece (BERT, MiniLM...) -> model "bert". normalizer BertNormalizer with clean_text and
//     handle_chinese_chars true (lowercase and strip_accents stored; strip_accents null follows
//     lowercase, as in HF), pre-tokenizer BertPreTokenizer, decoder WordPiece(prefix "##",
//     cleanup true), model.continuing_subword_prefix "##" (or absent), model.unk_token a token,
//     model.max_input_chars_per_word stored; post_processor TemplateProcessing whose single is
//     [SpecialToken $A SpecialToken] or BertProcessing {cls, sep} -> bos = the first ([CLS]),
//     eos = the last ([SEP]), add_bos = add_eos = true (no post_processor: neither). Tokens in
//     llama.cpp's GGUF form: "hello" -> "▁hello", "##ing" -> "ing", "[...]" as it is. Added
//     tokens must be special and not normalized.
//   Vocabulary: model.vocab (text -> id) plus added_tokens ({id, content, special}), whose ids may
//     extend past model.vocab or repeat its entries (same text and id); together the ids must be
//     exactly 0..n-1. Special added tokens -> type 3 (control; SentencePiece-style: model.unk_token's
//     -> 2, unknown),
//     the other added tokens -> 4 (user-defined, always matched in text as HF does), the rest
//     -> 1 (normal). Added tokens with lstrip, rstrip or single_word are refused, and so are
//     normalized ones under a normalizer. Merges as "left right" strings or [left, right] arrays;
//     both sides and their join must be tokens.
//   BOS and friends: tokenizer_config.json's bos_token / eos_token / pad_token / unk_token (a
//     string, or an object with "content"; null: none) are looked up by text; add_bos_token
//     (bool) -> add_bos; chat_template (a string, or a list of {name, template} of which the
//     "default" one is taken; no "default": none) -> chat_template. Where the config does not
//     say, a post_processor TemplateProcessing (alone or in a Sequence) whose `single` starts
//     with a SpecialToken gives add_bos = true and that token as bos (Llama 3). unk comes from
//     model.unk_token first. add_bos with no bos is an error. Not represented for BPE: tokens a
//     template appends (EOS) and add_eos_token (WordPiece: see above); nor the config's other
//     keys (added_tokens_decoder repeats tokenizer.json's added_tokens).
// Refused, each with one Status naming the problem: other models (Unigram, WordLevel), other
// normalizers (NFC, Lowercase...) and pre-tokenizers (for WordPiece also none, Whitespace...), Metaspace with prepend_scheme
// "always" or "first" (it does not prepend "▁" to text that already starts with a space, or not
// after a special token; longctx's "llama" model always does), malformed JSON and every field of
// the wrong type or missing. The returned vocabulary has been checked by
// BpeTokenizer::from_gguf.
#pragma once
#include <string>
#include <string_view>

#include "core/status.h"
#include "tokenizer/bpe.h"

namespace longctx::tokenizer {

// tokenizer_json: the text of tokenizer.json; tokenizer_config_json: the text of
// tokenizer_config.json, or "" when there is none. Errors start with the file's name.
Expected<GgufVocab> vocab_from_hf_json(std::string_view tokenizer_json, std::string_view tokenizer_config_json);

// Reads <dir>/tokenizer.json and, if present, <dir>/tokenizer_config.json (and, when that has no
// chat_template, <dir>/chat_template.jinja if present). `dir` may also be the tokenizer.json
// itself. Errors name the file.
Expected<GgufVocab> load_hf_vocab(const std::string& dir);

}  // namespace longctx::tokenizer
