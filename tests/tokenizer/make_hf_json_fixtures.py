#!/usr/bin/env python3
"""Hugging Face tokenizer.json fixtures for tests/tokenizer/hf_json_test.cc, made with `tokenizers`.

  python3 tests/tokenizer/make_hf_json_fixtures.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]

Writes golden/hf_json/<name>/ next to this script, for four small tokenizers:
  bytelevel_smollm  byte-level BPE trained here, SmolLM2's pre-tokenizer
                    Sequence[Digits(individual_digits), ByteLevel(use_regex)]; its specials given to
                    the trainer (so they are in model.vocab too) and one non-special added token;
  bytelevel_gpt2    GPT-2's ByteLevel(use_regex) pre-tokenizer alone; merges written in the old
                    "a b" string form; the specials added after training (ids past model.vocab);
  bytelevel_llama3  Llama 3's Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)] with
                    ignore_merges, and its TemplateProcessing post-processor that adds BOS;
  spm_small         SentencePiece-style BPE (byte_fallback, normalizer Prepend("▁") +
                    Replace(" ", "▁")): the small vocabulary of golden/spm_small.json as HF's
                    converter writes it (make_hf_golden.py spm_hf), plus Llama 2's post-processor;
  wordpiece_uncased WordPiece trained here with BERT's pipeline (BertNormalizer lowercase,
                    strip_accents null, BertPreTokenizer, WordPiece decoder) and its
                    TemplateProcessing [CLS] $A [SEP];
  wordpiece_cased   the same with lowercase=false, strip_accents=false, max_input_chars_per_word
                    20 and a BertProcessing post-processor;
each as tokenizer.json (Tokenizer.save), a tokenizer_config.json beside it, and hf_ids.json.gz: HF's
ids for every distinct string of golden/smollm2_tokens.json (by the index of its first case there,
"c") and a few strings of its own ("s"), encoded with special tokens parsed ("special": true) and,
where the string holds the text of one of this tokenizer's special tokens, also without, and
whether HF's decode gives the string back ("rt").

The byte-level tokenizers are trained on a few KB of varied text built from make_hf_golden.py's
word pools with a fixed seed; rerunning gives the same files.

With --model (default: SmolLM2's GGUF in models/, when present), also writes SmolLM2's tokenizer
rebuilt by make_hf_golden.py to build-tok/smollm2_hf/ (not committed); hf_json_test.cc loads it
when it is there and compares with golden/smollm2_tokens.json.
"""
import argparse
import gzip
import json
import os
import random
import sys

import tokenizers
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors,
                        trainers)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import make_hf_golden as g  # noqa: E402

OUT = os.path.join(HERE, "golden", "hf_json")

SMOLLM_TEMPLATE = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
                   "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
                   "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
                   "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3_TEMPLATE = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
                   "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
                   "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
                   "{% endif %}")
LLAMA2_TEMPLATE = ("{% for message in messages %}{% if message['role'] == 'user' %}"
                   "{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}"
                   "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}"
                   "{% endif %}{% endfor %}")


def training_text():
    rng = random.Random(7)
    parts = list(g.HAND[:40])
    for pool in g.WORD_POOLS + [g.SPACES]:
        parts.extend(pool)
    parts.extend(g.random_text(rng) for _ in range(150))
    return "\n".join(parts)


def train_bytelevel(pre, vocab_size, specials):
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tk.train_from_iterator([training_text()], trainer=trainer)
    return tk


def with_model(tk, extra_tokens=(), **kw):
    """The same tokenizer with its BPE model rebuilt with other options (e.g. ignore_merges) and
    extra tokens that no merge makes (as tiktoken-made vocabularies such as Llama 3's have)."""
    d = json.loads(tk.to_str())
    vocab = d["model"]["vocab"]
    for t in extra_tokens:
        vocab[t] = len(vocab)
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in d["model"]["merges"]]
    out = Tokenizer(models.BPE(vocab=vocab, merges=merges, **kw))
    out.normalizer, out.pre_tokenizer, out.decoder = tk.normalizer, tk.pre_tokenizer, tk.decoder
    out.post_processor = tk.post_processor
    return out


def make_smollm():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk = train_bytelevel(pre, 1100, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tk.add_tokens([AddedToken("<file_sep>", special=False, normalized=False)])
    tk.post_processor = processors.ByteLevel(trim_offsets=False)
    config = {"add_prefix_space": False, "bos_token": "<|im_start|>",
              "eos_token": {"__type": "AddedToken", "content": "<|im_end|>", "lstrip": False,
                            "normalized": False, "rstrip": False, "single_word": False},
              "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "add_bos_token": False,
              "chat_template": SMOLLM_TEMPLATE, "model_max_length": 8192,
              "tokenizer_class": "GPT2Tokenizer"}
    return tk, config, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], ["<|im_start|>user\n<file_sep>x"]


def make_gpt2():
    tk = train_bytelevel(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True), 1000, [])
    tk.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False),
                           AddedToken("<|im_start|>", special=True, normalized=False)])
    config = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
              "pad_token": None,
              "chat_template": [{"name": "tool_use", "template": "{{ tools }}"},
                                {"name": "default", "template": SMOLLM_TEMPLATE}]}
    return tk, config, ["<|endoftext|>", "<|im_start|>"], []


def make_llama3():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(g.LLAMA3), "isolated"),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    trained = train_bytelevel(pre, 1000, [])
    # The most frequent pieces of the test strings that are not tokens become tokens without a
    # merge: with ignore_merges such a piece is that one token, without it BPE splits it.
    counts = {}
    for _, s in golden_strings():
        for piece, _ in pre.pre_tokenize_str(s):
            counts[piece] = counts.get(piece, 0) + 1
    vocab = trained.get_vocab()
    extra = [p for p, _ in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if p not in vocab][:40]
    tk = with_model(trained, extra, ignore_merges=True)
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                "<|eot_id|>"]
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    bot = tk.token_to_id("<|begin_of_text|>")
    tk.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bot)])])
    config = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "chat_template": LLAMA3_TEMPLATE,
              "model_input_names": ["input_ids", "attention_mask"], "tokenizer_class": "PreTrainedTokenizerFast"}
    extra = ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>",
             "<|eot_id|><|eot_id|> 123456 abc", "<|begin_of_text", "Hello<|end_of_text|>"]
    return tk, config, specials, extra


def make_spm():
    with open(os.path.join(HERE, "golden", "spm_small.json"), encoding="utf-8") as f:
        d = json.load(f)
    tk = g.spm_hf(d["tokens"], d["token_types"], d["scores"])
    tk.add_tokens([AddedToken("<file_sep>", special=False, normalized=False)])
    tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                      special_tokens=[("<s>", 1)])
    config = {"add_bos_token": True, "add_eos_token": False, "legacy": True,
              "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": False, "normalized": False,
                            "rstrip": False, "single_word": False},
              "eos_token": {"__type": "AddedToken", "content": "</s>", "lstrip": False, "normalized": False,
                            "rstrip": False, "single_word": False},
              "unk_token": "<unk>", "pad_token": None, "chat_template": LLAMA2_TEMPLATE,
              "tokenizer_class": "LlamaTokenizer"}
    extra = ["<s>Hello</s> world", " <s> a", "<unk>x", "x<file_sep> y", "  two spaces first",
             "<s>", "</s></s>", "\u2581already marked", "ünïcödé ☃ 𝄞 \x00\x01"]
    return tk, config, ["<unk>", "<s>", "</s>"], extra


WORDPIECE_EXTRA = [
    "Café naïve résumé Ångström ñandú", "Tiếng Việt có dấu", "Straße ẞ groß", "İstanbul ıi Iİ",
    "中文字符测试，你好！", "日本語のひらがなとカタカナ", "한국어 텍스트", "emoji 😀👍🏽 ok",
    "ctrl\x00a\x01b\x7fc\u200bd\ufffde\u00ade\ue000f\tg\rh\u2028i\u3000j",
    "a" * 101 + " " + "b" * 100 + " " + "ab" * 60, "x" * 21 + " " + "y" * 20,
    "[CLS] hello [SEP] [MASK]ed [UNK] [PAD]", "[cls] lower [mask]", "don't stop. Is it? Yes! a, b 'quoted' we're",
    "\u0301\u0308 lone marks e\u0301 ΣΑΣ ǅ ﬃ", "１２３ ＡＢＣ full width", "𝐛𝐨𝐥𝐝 ⁵ ½",
]


def train_wordpiece(lowercase, strip_accents, post, max_chars):
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tk = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=max_chars))
    tk.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                               strip_accents=strip_accents, lowercase=lowercase)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    trainer = trainers.WordPieceTrainer(vocab_size=1200, min_frequency=2, show_progress=False,
                                        special_tokens=specials)
    tk.train_from_iterator([training_text(), "\n".join(WORDPIECE_EXTRA)], trainer=trainer)
    # train() rebuilds the model without max_input_chars_per_word: set it again.
    tk.model = models.WordPiece(vocab=tk.get_vocab(), unk_token="[UNK]", max_input_chars_per_word=max_chars)
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    if post == "template":
        tk.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                          special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    else:
        tk.post_processor = processors.BertProcessing(("[SEP]", sep), ("[CLS]", cls))
    config = {"do_lower_case": lowercase, "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
              "cls_token": "[CLS]", "mask_token": "[MASK]", "tokenize_chinese_chars": True,
              "strip_accents": strip_accents, "tokenizer_class": "BertTokenizer", "model_max_length": 512}
    return tk, config, specials, WORDPIECE_EXTRA


def golden_strings():
    with open(os.path.join(HERE, "golden", "smollm2_tokens.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    seen, out = set(), []
    for i, c in enumerate(cases):
        if c["s"] not in seen:
            seen.add(c["s"])
            out.append((i, c["s"]))
    return out


def hf_cases(tk, specials, extra):
    out = []
    items = [("c", i, s) for i, s in golden_strings()] + [("s", s, s) for s in extra]
    for key, ref, text in items:
        modes = [True, False] if any(t in text for t in specials) else [True]
        for special in modes:
            tk.encode_special_tokens = not special
            ids = tk.encode(text, add_special_tokens=False).ids
            rt = tk.decode(ids, skip_special_tokens=False) == text
            out.append({key: ref, "special": special, "ids": ids, "rt": rt})
    tk.encode_special_tokens = False
    return out


def write_json(path, obj, compact=True):
    with open(path, "w", encoding="utf-8") as f:
        if compact:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
        else:
            json.dump(obj, f, ensure_ascii=False, indent=2)
        f.write("\n")


def save(name, tk, config, specials, extra, string_merges=False):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.json")
    tk.save(path, pretty=False)
    if string_merges:  # the form of tokenizers < 0.20 (and most files on the hub)
        with open(path, encoding="utf-8") as f:
            j = json.load(f)
        j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
        write_json(path, j)
    reloaded = Tokenizer.from_file(path)
    write_json(os.path.join(d, "tokenizer_config.json"), config, compact=False)
    cases = hf_cases(reloaded, specials, extra)
    assert cases == hf_cases(tk, specials, extra), name
    with_specials = reloaded.encode("x", add_special_tokens=True).ids
    without = reloaded.encode("x", add_special_tokens=False).ids
    bos = with_specials[0] if with_specials[1:] == without and len(with_specials) == len(without) + 1 else None
    # Gzipped (deterministically): the ids of ~2,400 strings are ~400 KB as plain JSON.
    body = json.dumps({"tokenizers_version": tokenizers.__version__, "strings": "../../smollm2_tokens.json",
                       "vocab_size": reloaded.get_vocab_size(with_added_tokens=True),
                       "post_processor_bos": bos, "cases": cases}, ensure_ascii=False, separators=(",", ":"))
    with open(os.path.join(d, "hf_ids.json.gz"), "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", compresslevel=9, fileobj=raw, mtime=0) as f:
            f.write((body + "\n").encode("utf-8"))
    sizes = {f: os.path.getsize(os.path.join(d, f)) for f in sorted(os.listdir(d))}
    print(f"{name}: {len(cases)} cases, {sizes}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--only", action="append", help="write only this fixture (repeatable)")
    args = ap.parse_args()

    makers = {
        "bytelevel_smollm": lambda: save("bytelevel_smollm", *make_smollm()),
        "bytelevel_gpt2": lambda: save("bytelevel_gpt2", *make_gpt2(), string_merges=True),
        "bytelevel_llama3": lambda: save("bytelevel_llama3", *make_llama3()),
        "spm_small": lambda: save("spm_small", *make_spm()),
        "wordpiece_uncased": lambda: save("wordpiece_uncased", *train_wordpiece(True, None, "template", 100)),
        "wordpiece_cased": lambda: save("wordpiece_cased", *train_wordpiece(False, False, "bert", 20)),
    }
    for name, make in makers.items():
        if not args.only or name in args.only:
            make()

    if os.path.exists(args.model):
        tk, _ = g.smollm2_from_gguf(args.model)
        d = os.path.join(ROOT, "build-tok", "smollm2_hf")
        os.makedirs(d, exist_ok=True)
        tk.save(os.path.join(d, "tokenizer.json"))
        write_json(os.path.join(d, "tokenizer_config.json"),
                   {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>",
                    "unk_token": "<|endoftext|>", "chat_template": SMOLLM_TEMPLATE}, compact=False)
        print(f"wrote {d} (not committed)")


if __name__ == "__main__":
    main()
