#!/usr/bin/env python3
"""Golden files for the tokenizer tests, made with Hugging Face `tokenizers`.

  python3 tests/tokenizer/make_hf_golden.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                            [--tokenizer-json PATH]

Writes, next to this script:
  golden/smollm2_tokens.json   ~2400 varied strings (Latin with accents, Cyrillic, Greek, CJK,
                               Arabic, Hindi, emoji with ZWJ sequences and flags, whitespace runs,
                               digits, code, URLs, contractions, chat markup) with SmolLM2's token
                               ids and whether special tokens were parsed (tests/tokenizer/
                               real_vocab_test.cc requires identical ids);
  golden/pretokenizers.json    the pieces HF's pre-tokenizers cut a subset of those strings into,
                               for every regex family longctx supports (PreTokenizer::by_name);
  golden/spm_small.json        a small SentencePiece-style ("llama") vocabulary built here, and
                               the ids HF's BPE (byte_fallback) gives for the same strings.

SmolLM2's tokenizer is rebuilt from the GGUF file (read with the `gguf` package): its vocabulary
and merges in a BPE model with SmolLM2's tokenizer.json settings (pre-tokenizer
Sequence[Digits(individual_digits=True), ByteLevel(add_prefix_space=False, use_regex=True)], no
normalizer, ByteLevel decoder, the control tokens as special added tokens). The hub cannot be
reached from here; when the real tokenizer.json is at hand, pass --tokenizer-json to check that
the rebuilt tokenizer gives the same ids on every string.

Strings with specials are encoded twice: parsed (HF's default) and not parsed
(encode_special_tokens = True). Deterministic: a fixed seed; rerunning gives the same files.
"""
import argparse
import hashlib
import json
import os
import random
import sys
import unicodedata

import gguf
import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The regex families of src/tokenizer/pretokenize_regex.cc, as HF Split(Isolated) sequences.
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PRE_FAMILIES = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "gpt2": [GPT2],
    "llama3": [LLAMA3],
    "qwen2": [QWEN2],
    "smollm": [r"\p{N}", GPT2],
}


def field_strings(reader, key):
    f = reader.fields[key]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]


def field_ints(reader, key):
    f = reader.fields[key]
    return [int(f.parts[i][0]) for i in f.data]


def smollm2_from_gguf(path):
    r = gguf.GGUFReader(path)
    tokens = field_strings(r, "tokenizer.ggml.tokens")
    merges = field_strings(r, "tokenizer.ggml.merges")
    types = field_ints(r, "tokenizer.ggml.token_type")
    assert bytes(r.fields["tokenizer.ggml.pre"].parts[-1]).decode() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[tuple(m.split(" ")) for m in merges]))
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    specials = [t for t, ty in zip(tokens, types) if ty == 3]
    assert len(specials) == 17, specials
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tk, specials


# ---------------------------------------------------------------------------------------------
# Strings.

LATIN = ["café", "naïve", "über", "Straße", "señor", "façade", "résumé", "Ångström", "crème brûlée",
         "Dvořák", "Łódź", "São Paulo", "Tiếng Việt", "Đà Nẵng", "İstanbul", "ﬁnance", "cafe\u0301",
         "ÀÉÎÕÜ", "œuvre", "Æsir", "þorn", "smørrebrød", "Ærøskøbing", "Hello", "world", "The",
         "QUICK", "brown", "fox", "jumps", "over", "lazy", "dog", "a", "I", "AbCdEf", "camelCase",
         "snake_case", "kebab-case", "SCREAMING_CASE", "x", "Zürich", "piñata", "coöperate"]
CYRILLIC = ["Привет", "мир", "Москва", "ёжик", "Україна", "Ђорђе", "съешь", "же", "ещё", "этих",
            "мягких", "французских", "булок", "ЗДРАВСТВУЙТЕ", "Їжак", "Ґанок"]
GREEK = ["Καλημέρα", "κόσμε", "Ελλάδα", "ΑΒΓΔ", "ἀρχή", "ς", "φιλοσοφία", "Ὀδυσσεύς", "μῆνιν"]
CJK = ["你好", "世界", "中华人民共和国", "日本語", "ひらがな", "カタカナ", "漢字かな交じり文",
       "한국어", "안녕하세요", "東京タワー", "ｶﾀｶﾅ", "全角ＡＢＣ１２３", "简体字", "繁體字", "〇"]
ARABIC = ["مرحبا", "العالم", "السلام عليكم", "٠١٢٣٤٥٦٧٨٩", "ﷺ", "كِتَاب", "فارسی", "اردو"]
HEBREW = ["שלום", "עולם", "עִבְרִית"]
HINDI = ["नमस्ते", "हिन्दी", "भारत", "१२३४", "संस्कृतम्", "বাংলা", "தமிழ்", "ગુજરાતી"]
OTHER_SCRIPTS = ["สวัสดี", "ภาษาไทย", "ሰላም", "გამარჯობა", "Բարեւ", "ᚠᚢᚦ", "ꦗꦮ", "ᠮᠣᠩᠭᠣᠯ", "ລາວ",
                 "မြန်မာ", "ខ្មែរ", "བོད་", "ᏣᎳᎩ", "ⲙⲉⲧⲣⲉⲙ"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷", "🇯🇵🇺🇸", "1️⃣", "❤️", "🧑🏿‍🚀", "☃", "✨", "🤖",
         "👩‍💻", "🐈‍⬛", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "#️⃣", "🫠", "💯", "🙏🏻"]
CODE = ["def f(x):\n    return x**2\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
        "#include <stdio.h>", "x = {'a': 1, \"b\": [2, 3]}", "SELECT * FROM users WHERE id = 42;",
        "if (a && b || !c) { return -1; }", "<div class=\"x\">Hi</div>",
        "const f = (a, b) => a ?? b;", "    indented\n        more", "λx.x",
        "std::vector<int> v{1,2,3};", "printf(\"%d\\n\", n);", "$ ls -la | grep '.py'",
        "# comment\nimport numpy as np\n", "  }\n}\n", "a[i][j] += b[j][k] * c[k];",
        "fn main() -> Result<(), Box<dyn Error>> {", "x_1, x_2 = 10_000, 0b1010",
        "/* block */ // line", "@decorator\nclass A(B):\n\tpass", "<?php echo $x; ?>"]
URLS = ["https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        "http://example.com/path?q=1&r=%20x#frag", "mailto:someone@example.org",
        "ftp://ftp.example.net/pub/file.tar.gz", "www.wikipedia.org/wiki/Unicode",
        "https://例え.jp/パス", "user.name+tag@sub.domain.co.uk", "C:\\Users\\me\\file.txt",
        "/usr/local/bin/python3", "192.168.0.1:8080", "[link](https://a.b/c)"]
CONTRACTIONS = ["I'm", "you're", "he's", "we'll", "they've", "don't", "I'd", "'s", "'S", "'ll",
                "'LL", "'RE", "'Re", "'rE", "'ve", "'VE", "'M", "'D", "'T", "it’s", "rock 'n' roll",
                "''", "'''s", "'ſ", "'K", "O'Neil's", "WE'LL", "THEY'RE", "can't", "y'all",
                "'tis", "'twas", "ma'am", "'", "' s", "'1", "' 's"]
NUMBERS = ["0", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678901234567890",
           "3.14159", "1,234.56", "1e-10", "0x1F", "١٢٣", "①", "½", "Ⅻ", "²", "-42", "+7",
           "2024-06-01", "12:34:56", "$1,000,000", "50%", "1st", "2nd", "3rd", "4th", "v1.2.3",
           "٣٤٥", "੧੨", "๑๒๓", "𝟙𝟚𝟛", "⁴²", "10³", "¼¾", "〇一二三"]
SPACES = [" ", "  ", "   ", "    ", "\t", "\t\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n", "\n ",
          " \t ", "\u00a0", "\u3000", "\u2009", "\u0085", "\u180e", "\u200b", "\u2028", "\f",
          "\v", "\r", " \u00a0 ", "\u202f", "\u2003\u2003", "\ufeff", "\u200d"]
PUNCT = [".", ",", "!", "?", "...", "—", "–", "«", "»", "“", "”", "(", ")", "[", "]", "{", "}",
         "::", "->", "=>", "!!!", "?!", "@#$%^&*", "~", "`", "|", "\\", "/", "¿", "¡", "、",
         "。", "，", "•", "€", "£", "¥", "©", "®", "™", "°", "±", "×", "÷", "∑", "√", "∞", "≠",
         "≤", "§", "¶", "†", "‰", "′", "″", "…", "\"", "'", ";", ":", "_", "-", "+", "=", "<",
         ">", "<<", ">>", "</", "/>", "<|", "|>", "||", "&&", "**", "##", "--", "==", "\x00",
         "\x01", "\x1b[0m", "\x7f"]
SPECIAL_PARTS = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<repo_name>", "<reponame>",
                 "<file_sep>", "<filename>", "<gh_stars>", "<issue_start>", "<issue_comment>",
                 "<issue_closed>", "<jupyter_start>", "<jupyter_text>", "<jupyter_code>",
                 "<jupyter_output>", "<jupyter_script>", "<empty_output>", "<|im_start",
                 "im_end|>", "<|", "|>", "<|im_start|", "<reponame", "<|endoftext|", "<|im_end|",
                 "<<|im_start|>>", "<|im_start|>|>", "<filename", "<file_sep"]

WORD_POOLS = [LATIN, CYRILLIC, GREEK, CJK, ARABIC, HEBREW, HINDI, OTHER_SCRIPTS, EMOJI, CODE, URLS,
              CONTRACTIONS, NUMBERS, PUNCT]
SEPARATORS = [" "] * 12 + ["", "", "  ", "\n", "\t", "\n\n", " \n", "   ", "\u3000", "\u00a0", ", ",
                           ". ", "\r\n"]

HAND = [
    "", "Hello world", "Hello world's  end\n\n", "Hello, world! How are you?", " leading space",
    "trailing space ", "  two leading", "a  b", "a   b", "a \n b", "x\n\ny", "\n\nHello", "   \n",
    "The year 2024 had 366 days.", "Pi is 3.14159265358979323846264338327950288419716939937510",
    "Phone: +1 (555) 123-4567", "I've been to Zürich, Москва and 東京!",
    "Ce n'est pas très difficile, n'est-ce pas ?", "Γειά σου Κόσμε", "Съешь же ещё этих мягких "
    "французских булок, да выпей чаю.", "我爱北京天安门。", "日本語のテキストとEnglishの混在",
    "مرحبا بالعالم! ١٢٣", "नमस्ते दुनिया", "👨‍👩‍👧‍👦 family, 🇫🇷🇩🇪 flags, 👍🏽 ok",
    "tabs\tand\ttabs\t\tdouble", "line1\nline2\r\nline3\rline4", "    return x  # comment",
    "He said \"Hello\" and 'goodbye'.", "It's John's book, isn't it? They'll see. WE'RE HERE.",
    "'s'S'll'LL're'RE've'VE'm'M'd'D't'T", "mixed123numbers456and789letters", "x" * 300,
    " " * 200 + "x", "\n" * 50, "1" * 100, "ab" * 150, "\t \n" * 40, "é" * 100, "😀" * 50,
    "a\u0301\u0302\u0303 combining", "\u200b\u200c\u200d zero widths", "\ufeffBOM first",
    "<|im_start|>user\nHi<|im_end|>", "<|im_start|>system\nYou are a helpful AI assistant named "
    "SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
    "<|im_start|>assistant\n", "<|endoftext|>", "<|endoftext|><|endoftext|>",
    " <|im_end|> ", "text<|im_end|>text", "<|im_start|><|im_end|>", "<<|im_start|>>",
    "<|im_start", "<|im_start|", "<repo_name>longctx<file_sep>src/main.cc<gh_stars>100",
    "<jupyter_start><jupyter_code>print(1)<jupyter_output>1<empty_output>",
]


def random_codepoint_string(rng, n):
    out = []
    while len(out) < n:
        r = rng.random()
        if r < 0.5:
            cp = rng.randrange(0x20, 0x3000)
        elif r < 0.8:
            cp = rng.randrange(0x3000, 0x10000)
        else:
            cp = rng.randrange(0x10000, 0x30000)
        c = chr(cp)
        if unicodedata.category(c) in ("Cn", "Cs"):
            continue  # unassigned in Unicode 14 (PCRE2 10.42's tables) or a surrogate
        out.append(c)
    return "".join(out)


def random_text(rng):
    parts = []
    for _ in range(rng.randint(1, 7)):
        kind = rng.random()
        if kind < 0.08:
            parts.append(rng.choice(SPACES))
        elif kind < 0.14:
            parts.append(str(rng.randrange(10 ** rng.randint(1, 25))))
        elif kind < 0.18:
            parts.append(random_codepoint_string(rng, rng.randint(1, 6)))
        else:
            w = rng.choice(rng.choice(WORD_POOLS))
            if rng.random() < 0.1:
                w = w.upper()
            elif rng.random() < 0.1:
                w = w.capitalize()
            parts.append(w)
        parts.append(rng.choice(SEPARATORS))
    s = "".join(parts)
    return s if rng.random() < 0.7 else s.strip()


def chat_text(rng):
    msgs = []
    if rng.random() < 0.5:
        msgs.append(("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"))
    for i in range(rng.randint(1, 2)):
        msgs.append(("user", random_text(rng)))
        if rng.random() < 0.7:
            msgs.append(("assistant", random_text(rng)))
    s = "".join(f"<|im_start|>{role}\n{content}<|im_end|>\n" for role, content in msgs)
    return s + ("<|im_start|>assistant\n" if rng.random() < 0.7 else "")


def special_text(rng):
    parts = []
    for _ in range(rng.randint(1, 6)):
        parts.append(rng.choice(SPECIAL_PARTS) if rng.random() < 0.5 else random_text(rng))
        parts.append(rng.choice(["", "", " ", "\n"]))
    return "".join(parts)


def strings(rng):
    out = list(HAND)
    for pool in WORD_POOLS + [SPACES, SPECIAL_PARTS]:
        out.extend(pool)
    out.extend(rng.choice(PUNCT) + rng.choice(PUNCT) + rng.choice(LATIN) for _ in range(40))
    out.extend(random_codepoint_string(rng, rng.randint(1, 40)) for _ in range(250))
    out.extend(chat_text(rng) for _ in range(120))
    out.extend(special_text(rng) for _ in range(150))
    while len(out) < 2400:
        out.append(random_text(rng))
    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    return unique


def has_special_text(s):
    return any(p in s for p in SPECIAL_PARTS[:17])


# ---------------------------------------------------------------------------------------------
# A small SentencePiece-style vocabulary: <unk> <s> </s>, the 256 <0xXX> byte tokens, then pieces
# learned by a few BPE steps over the strings (in '▁' form), each scored -(its merge index).

def spm_small(texts):
    words = {}
    for s in texts:
        norm = "▁" + s.replace(" ", "▁")
        for w in norm.split("▁"):
            if w:
                words["▁" + w] = words.get("▁" + w, 0) + 1
    chars = {}
    for w, f in words.items():
        for c in w:
            chars[c] = chars.get(c, 0) + f
    # Characters seen at least 3 times are tokens; the rare ones exercise byte fallback.
    pieces = [c for c, f in sorted(chars.items(), key=lambda x: (-x[1], x[0])) if f >= 3]
    split = {w: list(w) for w in words}
    known = set(pieces)
    merged = []
    for _ in range(700):
        pairs = {}
        for w, syms in split.items():
            for a, b in zip(syms, syms[1:]):
                if a in known and b in known:
                    pairs[(a, b)] = pairs.get((a, b), 0) + words[w]
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda x: (x[1], x[0]))
        merged.append(a + b)
        known.add(a + b)
        for w, syms in split.items():
            i, nxt = 0, []
            while i < len(syms):
                if i + 1 < len(syms) and syms[i] == a and syms[i + 1] == b:
                    nxt.append(a + b)
                    i += 2
                else:
                    nxt.append(syms[i])
                    i += 1
            split[w] = nxt
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [2, 3, 3] + [6] * 256
    scores = [0.0, 0.0, 0.0] + [0.0] * 256
    for i, c in enumerate(pieces):
        tokens.append(c)
        types.append(1)
        scores.append(-1000.0 - i)  # characters below every merge
    for i, p in enumerate(merged):
        if p in tokens:
            continue
        tokens.append(p)
        types.append(1)
        scores.append(-float(i))
    return tokens, types, scores


def spm_hf(tokens, types, scores):
    vocab = {t: i for i, t in enumerate(tokens)}
    # HF's SentencePieceExtractor: every split of a normal token into two tokens is a merge,
    # ranked by the merged token's score (highest first; ties by merged id, then the sides' ids).
    merges = []
    for i, t in enumerate(tokens):
        if types[i] != 1:
            continue
        local = [(t[:k], t[k:]) for k in range(1, len(t))
                 if t[:k] in vocab and t[k:] in vocab
                 and types[vocab[t[:k]]] == 1 and types[vocab[t[k:]]] == 1]
        local.sort(key=lambda lr: (vocab[lr[0]], vocab[lr[1]]))
        merges.extend((scores[i], i, l, r) for l, r in local)
    merges.sort(key=lambda m: (-m[0], m[1], vocab[m[2]], vocab[m[3]]))
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[(l, r) for _, _, l, r in merges],
                              unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tk.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                    decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    tk.add_special_tokens([AddedToken(t, special=True, normalized=False)
                           for t in ("<unk>", "<s>", "</s>")])
    return tk


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=os.path.join(ROOT, "models/SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--tokenizer-json", help="SmolLM2's real tokenizer.json, to check the rebuild")
    args = ap.parse_args()

    tk, specials = smollm2_from_gguf(args.model)
    rng = random.Random(20240611)
    texts = strings(rng)

    cases = []
    for s in texts:
        flags = [False, True] if has_special_text(s) else [False]
        for special in flags:
            tk.encode_special_tokens = not special
            ids = tk.encode(s, add_special_tokens=False).ids
            if not special:
                assert tk.decode(ids, skip_special_tokens=False) == s, repr(s)
            cases.append({"s": s, "special": special, "ids": ids})
    tk.encode_special_tokens = False

    if args.tokenizer_json:
        real = Tokenizer.from_file(args.tokenizer_json)
        bad = 0
        for c in cases:
            real.encode_special_tokens = not c["special"]
            if real.encode(c["s"], add_special_tokens=False).ids != c["ids"]:
                bad += 1
                if bad <= 5:
                    print("differs from tokenizer.json:", repr(c["s"]), file=sys.stderr)
        print(f"{len(cases) - bad} of {len(cases)} cases equal to {args.tokenizer_json}")
        if bad:
            sys.exit(1)

    with open(args.model, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    os.makedirs(os.path.join(HERE, "golden"), exist_ok=True)

    def write(name, obj):
        path = os.path.join(HERE, "golden", name)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=False, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {path} ({os.path.getsize(path)} bytes)")

    write("smollm2_tokens.json", {
        "model": os.path.basename(args.model), "model_sha256": sha,
        "tokenizers_version": tokenizers.__version__, "cases": cases})

    # Pre-tokenizer pieces, as UTF-8 byte lengths, for the strings without special tokens.
    plain = [s for s in texts if not has_special_text(s)]
    sub = plain[:700]
    pre_cases = []
    families = {name: pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(p), "isolated")
                                                for p in pats])
                for name, pats in PRE_FAMILIES.items()}
    for s in sub:
        entry = {"s": s}
        for name, pt in families.items():
            entry[name] = [len(p.encode("utf-8")) for p, _ in pt.pre_tokenize_str(s)]
        pre_cases.append(entry)
    write("pretokenizers.json", {"tokenizers_version": tokenizers.__version__,
                                 "patterns": PRE_FAMILIES, "cases": pre_cases})

    tokens, types, scores = spm_small(plain)
    spm = spm_hf(tokens, types, scores)
    spm_cases = []
    for s in plain[:1200] + ["<s>Hello</s> world", " <s> a", "<unk>x"]:
        special = "<s>" in s or "<unk>" in s or "</s>" in s
        spm.encode_special_tokens = not special
        spm_cases.append({"s": s, "special": special, "ids": spm.encode(s, add_special_tokens=False).ids})
    write("spm_small.json", {"tokenizers_version": tokenizers.__version__, "tokens": tokens,
                             "token_types": types, "scores": scores, "unk": 0, "bos": 1, "eos": 2,
                             "cases": spm_cases})


if __name__ == "__main__":
    main()
