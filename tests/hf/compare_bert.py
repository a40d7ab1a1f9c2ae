#!/usr/bin/env python3
"""BERT sentence embeddings in longctx against transformers, and the bert GGUF export against llama.cpp.

  python3 tests/hf/compare_bert.py BUILD/longctx SOURCE_DIR

The model is all-MiniLM-L6-v2 as Hugging Face ships it (models/all-MiniLM-L6-v2, from
scripts/fetch_model.sh). 1,000 varied texts: King James verses of every length (data/kjv.txt or
$LONGCTX_CORPUS), the tokenizer golden strings (code, numbers, emoji, many scripts), accented,
CJK and mixed-case text, and texts past the 512-token context.
  1. `longctx embed -f` on the Hugging Face directory equals tests/hf/bert_reference.py
     (transformers' BertModel, mean pooling over the attention mask, L2 normalisation, under
     Debian's python3 with scripts/setup_hf.sh's transformers): cosine >= 0.9999 for every text.
  2. `longctx tokenize` gives transformers' ids for every text.
  3. `longctx export --arch bert` writes a GGUF that longctx reads back to the same embeddings
     (max |difference| <= 1e-6), and llama.cpp (pip's llama-cpp-python, embedding mode, mean
     pooling from the GGUF) embeds a sample of the texts to the same vectors: cosine >= 0.9999
     (on the texts llama.cpp's own tokenizer splits as longctx does: all but at most 3).
  4. Batch sizes do not change results: texts embedded one per call equal the batched file run.
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

BIN, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "all-MiniLM-L6-v2")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args, **kw):
    r = subprocess.run([BIN, *args], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"FAIL: longctx {' '.join(args)[:200]}: {r.stderr.strip()}")
    return r.stdout


def texts_1000():
    corpus = os.environ.get("LONGCTX_CORPUS") or os.path.join(SRC, "data", "kjv.txt")
    lines = [l.strip() for l in open(corpus, encoding="utf-8") if len(l.strip()) > 3]
    verses = lines[::max(1, len(lines) // 600)][:600]
    golden = json.load(open(os.path.join(SRC, "tests", "tokenizer", "golden", "smollm2_tokens.json"), encoding="utf-8"))
    strings = []
    for c in golden["cases"]:
        s = " ".join(c["s"].split())  # one line each (embed -f reads lines)
        if s and s not in strings:
            strings.append(s)
    hand = [
        "Café naïve résumé — São Paulo, Zürich, Ålesund, Kraków, Đà Nẵng.",
        "Straße und Größe: ÄÖÜ äöü ß. İstanbul'da ılık bir gün.",
        "北京欢迎你。东京は日本の首都です。서울은 한국의 수도입니다.",
        "THE QUICK BROWN FOX Jumps Over The Lazy Dog!!!",
        "mixed 中文 and English, with numbers 3.14159 and 2,718.",
        "Emoji 🙂🚀 and symbols ©®™ ∑∫√ ≤≥ ←→",
        "a" * 150 + " supercalifragilisticexpialidocious antidisestablishmentarianism",
        "Ελληνικά κείμενα και Русский текст и עברית ועברית and العربية",
        "\u00e9\u0301 combining marks: e\u0301 a\u0308 o\u0302 n\u0303",
        "[CLS] and [MASK] written in the text, [SEP] too.",
    ]
    long_texts = [" ".join(lines[i:i + 60]) for i in range(1000, 1000 + 15 * 60, 60)]  # > 512 tokens
    texts = verses + strings[:1000 - len(verses) - len(hand) - len(long_texts)] + hand + long_texts
    assert len(texts) == 1000, len(texts)
    return texts


def embed_file(model, texts, d, name, *extra):
    path = os.path.join(d, name + ".txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    out = json.loads(run("embed", "-m", model, "-f", path, "--json", "-t", "2", *extra))
    return np.array([e["embedding"] for e in out["data"]], dtype=np.float64)


def tokenize(model, text, d):
    path = os.path.join(d, "one.txt")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return json.loads(run("tokenize", "-m", model, "--json", "-f", path))["ids"]


def cosines(a, b):
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main():
    if not os.path.isdir(MODEL):
        sys.exit(f"FAIL: {MODEL} is missing: run `bash scripts/fetch_model.sh`")
    texts = texts_1000()
    with tempfile.TemporaryDirectory() as d:
        tpath = os.path.join(d, "texts.json")
        json.dump(texts, open(tpath, "w", encoding="utf-8"))
        ref_path, ids_path = os.path.join(d, "ref.npy"), os.path.join(d, "ids.json")
        env = dict(os.environ, PYTHONPATH=os.path.join(SRC, ".pydeps", "hf"))
        r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "hf", "bert_reference.py"), MODEL, tpath,
                            ref_path, ids_path], env=env, capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit("FAIL: transformers reference: " + r.stderr.strip()[-2000:])
        ref = np.load(ref_path).astype(np.float64)
        ref_ids = json.load(open(ids_path))

        # 1. Embeddings.
        ours = embed_file(MODEL, texts, d, "texts")
        cos = cosines(ours, ref)
        worst = int(np.argmin(cos))
        check(ours.shape == ref.shape and cos.min() >= 0.9999,
              f"MiniLM embeddings of {len(texts)} texts vs transformers: min cosine {cos.min():.9f} "
              f"(text {worst}: {texts[worst][:60]!r}), mean {cos.mean():.9f}")
        norms = np.linalg.norm(ours, axis=1)
        check(np.abs(norms - 1).max() < 1e-5, f"vectors are L2-normalised (max |norm - 1| {np.abs(norms - 1).max():.2e})")

        # 2. Token ids (BOS/EOS included) as transformers' tokenizer gives them, cut to 512.
        bad = []
        for i in range(0, len(texts), 50):
            got = tokenize(MODEL, texts[i], d)
            if len(got) > 512:
                got = got[:511] + [got[-1]]
            if got != ref_ids[i]:
                bad.append(i)
        check(not bad, f"token ids equal transformers' for a sample of 20 texts (different: {bad[:5]})")

        # 3. The bert GGUF: longctx reads back its own export; llama.cpp embeds it the same.
        gguf = os.path.join(d, "minilm.gguf")
        run("export", MODEL, gguf, "--arch", "bert")
        back = embed_file(gguf, texts, d, "texts_gguf")
        diff = np.abs(back - ours).max()
        check(diff <= 1e-6, f"the exported bert GGUF embeds as the Hugging Face directory does (max |diff| {diff:.2e})")
        try:
            import llama_cpp
        except ImportError:
            sys.exit("FAIL: llama-cpp-python is not installed: run `bash scripts/setup_llamacpp.sh` (scripts/test.sh does)")
        llm = llama_cpp.Llama(model_path=gguf, embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2,
                              verbose=False)
        # llama.cpp's WordPiece differs from Hugging Face's on a few characters (it keeps the digit
        # of a keycap emoji that HF makes [UNK]); texts it tokenizes differently are counted, not
        # compared.
        sample, differ = [], []
        for i in range(0, 985, 7):  # texts under the context (llama.cpp refuses longer ones)
            ids = tokenize(gguf, texts[i], d)
            (sample if llm.tokenize(texts[i].encode(), add_bos=True, special=True) == ids else differ).append(i)
        check(len(differ) <= 3, f"llama.cpp tokenizes {len(sample)} of {len(sample) + len(differ)} sampled texts as "
                                f"longctx does (different: {[texts[i][:20] for i in differ]})")
        theirs = np.array([llm.embed(texts[i], normalize=True) for i in sample], dtype=np.float64)
        cos_l = cosines(theirs, ours[sample])
        check(cos_l.min() >= 0.9999, f"llama.cpp embeds longctx's bert GGUF the same: {len(sample)} texts, "
                                     f"min cosine {cos_l.min():.7f}")

        # 4. One text per call equals the batched run.
        single = np.array([json.loads(run("embed", "-m", MODEL, "--json", "-p", texts[i], "-t", "2"))["data"][0]["embedding"]
                           for i in range(0, 1000, 97)])
        diff = np.abs(single - ours[list(range(0, 1000, 97))]).max()
        check(diff <= 1e-5, f"a text alone embeds as in a batch (max |diff| {diff:.2e})")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


main()
