#!/usr/bin/env python3
"""longctx tokenize / detokenize against Hugging Face `tokenizers`.

  tokenize_test.py path/to/longctx SOURCE_DIR

1. The tokenizer.json fixtures of tests/tokenizer/golden/hf_json/ (directories holding only
   the tokenizer files, which longctx loads without weights): the ~2,300 strings of
   golden/smollm2_tokens.json, plus text around each fixture's added tokens, joined into chunks
   of a few KB; `tokenize --json` must give the ids that HF computes here, now, on the same text:
   by default as HF's encode() (special-token text parsed, the post-processor's BOS), and with
   --no-special as encode(add_special_tokens=False) with encode_special_tokens = True. The short
   hand-written strings also go one at a time (the start of a text matters: BOS, SentencePiece's
   "▁"). `detokenize` of both id lists must equal HF's decode(skip_special_tokens=False), which
   is the text itself where HF round-trips it. The WordPiece fixtures (BERT's pipeline) get the
   WORDPIECE strings too: accents, CJK, emoji, control characters, long words, [CLS]/[MASK] text;
   by default HF's encode() adds [CLS] ... [SEP], and so must longctx (add_bos, add_eos).
2. The real MiniLM tokenizer (models/all-MiniLM-L6-v2, skipped when absent; its tokenizer.json
   truncates and pads to 128, which the reference turns off): the same comparisons.
3. SmolLM2's GGUF in models/ (skipped when absent), against the committed goldens that HF made
   (golden/smollm2_tokens.json): the cases with special tokens parsed in chunks joined by
   <|endoftext|> (a special token, so each string is encoded on its own and the chunk's ids are
   the strings' ids with 0 between them), the ones with special-token text not parsed one at a
   time with --no-special; `detokenize` gives every chunk back.
"""
import concurrent.futures
import json
import os
import re
import subprocess
import sys
import tempfile

from tokenizers import Tokenizer

BIN, SRC = sys.argv[1], sys.argv[2]
GOLDEN = os.path.join(SRC, "tests", "tokenizer", "golden")
SMOLLM2 = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
MINILM = os.path.join(SRC, "models", "all-MiniLM-L6-v2")
sys.path.insert(0, os.path.join(SRC, "tests", "tokenizer"))
from make_hf_json_fixtures import WORDPIECE_EXTRA  # noqa: E402

# More text for WordPiece: accents, scripts, control characters, long words, specials' text.
WORDPIECE = WORDPIECE_EXTRA + [
    "Él está en São Paulo; Øresund, Ærø, Çağrı, Łódź, Dvořák", "Việt Nam, Hà Nội, Thành phố Hồ Chí Minh",
    "Fußgängerübergänge STRASSE Maß", "İİİ ıııı DİYARBAKIR", "東京は日本の首都です。北京欢迎你",
    "ひらがな カタカナ ｶﾀｶﾅ 漢字かな交じり文", "대한민국 서울특별시 안녕하세요", "🇫🇷 👨‍👩‍👧 ❤️ 🤖x🤖",
    "tab\there\nnew\r\nline\x0bvt\x0cff\x85nel\u00a0nbsp\u2009thin\x1fus\x1b[31mred",
    "supercalifragilisticexpialidocious" * 4, "pneumonoultramicroscopicsilicovolcanoconiosis " * 3,
    "[CLS][SEP][MASK][PAD][UNK]", "[CLS]x[SEP]", "[MASK] is [mask]", "[CLS ] [ CLS]", "e-mail: a.b@c.d, 3.14 $5 #1 ~ ^_^",
    "\u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u05e2\u05d1\u05e8\u05d9\u05ea \u0939\u093f\u0928\u094d\u0926\u0940",
    "Ελληνικά ΟΔΥΣΣΕΥΣ Русский ЯЗЫК", "\ud7a3\u1100\u1161\u11a8 ㄱㅏ", "\U00020000\U0002b820\U0002b920 \uf900",
]
HAND_STRINGS = 55  # golden/smollm2_tokens.json starts with make_hf_golden.py's HAND list
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
        if len(failures) <= 10:
            print("FAIL", what, file=sys.stderr)


def run(args):
    r = subprocess.run([BIN] + args, capture_output=True)
    if r.returncode != 0:
        raise SystemExit("longctx %s failed (rc %d): %s" % (args[0], r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout


def tokenize(model, text, special, tmp, pieces=False):
    # -f: the exact bytes (strings hold NUL and lone control characters that argv cannot).
    with tempfile.NamedTemporaryFile(dir=tmp, delete=False) as f:
        f.write(text.encode("utf-8"))
    flags = ["--json"] + ([] if special else ["--no-special"]) + (["--pieces"] if pieces else [])
    out = json.loads(run(["tokenize", "-m", model, "-f", f.name] + flags))
    os.unlink(f.name)
    assert out["n_tokens"] == len(out["ids"]), out
    return (out["ids"], out["pieces"]) if pieces else out["ids"]


def gpt2_byte_of_char():
    """GPT-2's bytes_to_unicode, inverted: the byte each character of a byte-level token stands for."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + len(cs) - 188)
    return {chr(c): b for b, c in zip(bs, cs)}


BYTE_OF_CHAR = gpt2_byte_of_char()


def wordpiece_cleanup(s):
    for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"),
                 (" do not", " don't"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
        s = s.replace(a, b)
    return s


def hf_piece(hf, token_id, added, byte_level, wordpiece=False):
    """The text HF's token string stands for, or None where it is not whole UTF-8 characters.
    WordPiece: a word-initial token with its space ("##" continuations without), cleaned up as HF's
    decoder cleans each token."""
    t = hf.id_to_token(token_id)
    if token_id in added:
        return t
    if wordpiece:
        return wordpiece_cleanup(t[2:] if t.startswith("##") else " " + t)
    if byte_level:
        raw = bytes(BYTE_OF_CHAR[c] for c in t)
    elif re.fullmatch(r"<0x[0-9A-F]{2}>", t):  # SentencePiece byte fallback
        raw = bytes([int(t[3:5], 16)])
    else:
        raw = t.replace("▁", " ").encode("utf-8")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def detokenize(model, ids):
    out = run(["detokenize", "-m", model, "--ids", ",".join(map(str, ids))])
    assert out.endswith(b"\n"), out[-20:]
    return out[:-1]


def first_difference(a, b):
    n = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return "at id %d: %s vs HF %s" % (n, a[n:n + 8], b[n:n + 8])


def chunks(strings, sep, size=4000):
    out, cur = [], []
    for s in strings:
        cur.append(s)
        if sum(len(x) for x in cur) >= size:
            out.append(sep.join(cur))
            cur = []
    if cur:
        out.append(sep.join(cur))
    return out


def hf_encode(hf, text, special):
    hf.encode_special_tokens = not special
    return hf.encode(text, add_special_tokens=special).ids


def fixture(name, strings, tmp, model=None):
    model = model or os.path.join(GOLDEN, "hf_json", name)
    hf = Tokenizer.from_file(os.path.join(model, "tokenizer.json"))
    hf.no_truncation()
    hf.no_padding()
    wordpiece = json.loads(hf.to_str())["model"]["type"] == "WordPiece"
    added = [t.content for t in hf.get_added_tokens_decoder().values()]
    extra = [f"{t}Hello {t} world{t}\n{t}" for t in added] + ["".join(added), " ".join(added)]
    if wordpiece:
        extra += WORDPIECE
    texts = chunks(strings + extra, "\n") + strings[:HAND_STRINGS] + extra
    added_ids = set(hf.get_added_tokens_decoder())
    tested = detokenized = round_trips = 0
    for text in texts:
        for special in (True, False):
            ids, pieces = tokenize(model, text, special, tmp, pieces=True)
            want = hf_encode(hf, text, special)
            check(ids == want, f"{name} {'default' if special else '--no-special'} {text[:40]!r}: "
                  + first_difference(ids, want))
            for i, piece in zip(ids, pieces):
                p = hf_piece(hf, i, added_ids, name.startswith("bytelevel"), wordpiece)
                check(p is None or piece == p, f"{name} --pieces: token {i} is {piece!r}, HF's {p!r}")
            decoded = hf.decode(want, skip_special_tokens=False)
            if ids == want and "\ufffd" not in decoded:  # HF's U+FFFD stands for bytes we print raw
                check(detokenize(model, ids) == decoded.encode("utf-8"), f"{name} detokenize {text[:40]!r}")
                detokenized += 1
                round_trips += decoded == text
            tested += 1
    print(f"{name}: {tested} tokenize runs compared with HF's ids and tokens, {detokenized} detokenize runs with "
          f"HF's decode ({round_trips} of them the text itself)")
    plain_formats(model, hf, wordpiece)


def plain_formats(model, hf, wordpiece):
    """Without --json: the ids as one comma-separated line; --pieces: one "ID 'PIECE'" line each."""
    text = "Hello\tworld's\n café 12"
    want = hf_encode(hf, text, True)
    check(run(["tokenize", "-m", model, "-p", text]) == (",".join(map(str, want)) + "\n").encode(),
          f"plain ids of {text!r}")
    lines = run(["tokenize", "-m", model, "-p", text, "--pieces"]).decode().splitlines()
    check([int(l.split(" ", 1)[0]) for l in lines] == want and all(re.fullmatch(r"\d+ '.*'", l) for l in lines),
          f"--pieces lines {lines}")
    if not wordpiece:  # BERT's normalizer makes tab and newline spaces, which are no token's text
        check("\\t" in "".join(lines) and "\\n" in "".join(lines), f"--pieces escapes tab and newline: {lines}")


def smollm2(cases, tmp):
    if not os.path.exists(SMOLLM2):
        print(f"SmolLM2: skipped ({SMOLLM2} absent; scripts/fetch_model.sh fetches it)")
        return
    parsed = [c for c in cases if c["special"] or not any(c["s"] == d["s"] and d["special"] for d in cases)]
    unparsed = [c for c in cases if not c["special"] and c not in parsed]
    sep = "<|endoftext|>"
    groups, cur = [], []
    for c in parsed:
        cur.append(c)
        if sum(len(x["s"]) for x in cur) >= 8000:
            groups.append(cur)
            cur = []
    groups.append(cur)
    for g in groups:
        text = sep.join(c["s"] for c in g)
        want = [i for k, c in enumerate(g) for i in ([0] if k else []) + c["ids"]]
        ids = tokenize(SMOLLM2, text, True, tmp)
        check(ids == want, "SmolLM2 chunk: " + first_difference(ids, want))
        check(detokenize(SMOLLM2, ids) == text.encode("utf-8"), "SmolLM2 detokenize of a chunk")
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda c: tokenize(SMOLLM2, c["s"], False, tmp), unparsed))
    for c, ids in zip(unparsed, got):
        check(ids == c["ids"], f"SmolLM2 --no-special {c['s'][:40]!r}: " + first_difference(ids, c["ids"]))
    print(f"SmolLM2: {len(parsed)} cases with special tokens parsed (in {len(groups)} chunks) and {len(unparsed)} "
          "unparsed compared with the goldens")


def main():
    with open(os.path.join(GOLDEN, "smollm2_tokens.json"), encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    strings = list(dict.fromkeys(c["s"] for c in cases))
    with tempfile.TemporaryDirectory() as tmp:
        for name in sorted(os.listdir(os.path.join(GOLDEN, "hf_json"))):
            fixture(name, strings, tmp)
        if os.path.exists(os.path.join(MINILM, "tokenizer.json")):
            fixture("MiniLM", strings, tmp, model=MINILM)
        else:
            print(f"MiniLM: skipped ({MINILM} absent; scripts/fetch_model.sh fetches it)")
        smollm2(cases, tmp)
    if failures:
        sys.exit(f"{len(failures)} failures")
    print("ok")


if __name__ == "__main__":
    main()
