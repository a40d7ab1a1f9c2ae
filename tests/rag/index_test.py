#!/usr/bin/env python3
"""`longctx index build/search` on all-MiniLM-L6-v2 against a brute-force NumPy ranking.

  python3 tests/rag/index_test.py BUILD/longctx SOURCE_DIR

A corpus built here: the King James Bible cut into 30 files of a few hundred lines (Markdown and
text, in nested directories, plus a hidden directory and a binary file the walk must skip) and
three files holding made-up facts. Checks:
 1. every chunk's text is its file's bytes [byte_begin, byte_end), its line range is where those
    bytes are, consecutive chunks of a file overlap or touch, and together they cover every word;
 2. `index search --json` returns the top 10 of a brute-force ranking computed here with NumPy
    (the index's vectors read with gguf-py, the query's vector from `longctx embed`): the same
    chunks in the same order (up to ties within 1e-6) and the same scores within 1e-5;
 3. a question about each made-up fact finds the file holding it first, with its line;
 4. after one file changes, a rebuild embeds only that file (its summary says so), keeps the
    other files' vectors bit for bit, and equals a fresh build of the changed corpus (1e-6).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from gguf import GGUFReader

BIN, SRC = sys.argv[1], sys.argv[2]
MODEL = os.path.join(SRC, "models", "all-MiniLM-L6-v2")
failures = []
FACTS = {
    "facts/geo.md": ("# Geography\n\nSome notes.\n\nThe capital of Freedonia is Tuxford, on the river Glub.\n",
                     "What is the capital city of Freedonia?", 5),
    "facts/pets/cat.txt": ("Household notes.\nZorblax the cat sleeps twenty hours every day and hates rain.\n",
                           "How many hours does Zorblax the cat sleep?", 2),
    "facts/code/launch.py": ("import os\n\n\ndef launch_rocket(fuel_kg):\n    \"\"\"Launches the rocket when the fuel "
                             "exceeds 500 kilograms.\"\"\"\n    return fuel_kg > 500\n",
                             "function that launches the rocket depending on fuel", 4),
}


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: longctx {' '.join(args)[:200]}: {r.stderr.strip()}")
    return r.stdout


def read_index(path):
    r = GGUFReader(path)
    f = {k: r.fields[k] for k in r.fields}

    def arr(key):
        fld = f[key]
        return [fld.parts[i].tolist()[0] if fld.types[-1] != 8 else bytes(fld.parts[i]).decode("utf-8")
                for i in fld.data]

    vec = next(t for t in r.tensors if t.name == "vectors")
    return {
        "files": arr("index.file.path"),
        "chunk_file": arr("index.chunk.file"),
        "line_begin": arr("index.chunk.line_begin"), "line_end": arr("index.chunk.line_end"),
        "byte_begin": arr("index.chunk.byte_begin"), "byte_end": arr("index.chunk.byte_end"),
        "text": arr("index.chunk.text"),
        "vectors": np.array(vec.data, dtype=np.float64).reshape(len(arr("index.chunk.file")), -1),
    }


def main():
    if not os.path.isdir(MODEL):
        sys.exit(f"FAIL: {MODEL} is missing: run `bash scripts/fetch_model.sh`")
    corpus = os.environ.get("LONGCTX_CORPUS") or os.path.join(SRC, "data", "kjv.txt")
    lines = open(corpus, encoding="utf-8").read().split("\n")
    with tempfile.TemporaryDirectory() as d:
        docs = os.path.join(d, "docs")
        for i in range(30):
            sub = os.path.join(docs, "bible", f"part{i // 10}")
            os.makedirs(sub, exist_ok=True)
            ext = ".md" if i % 2 else ".txt"
            with open(os.path.join(sub, f"book{i:02d}{ext}"), "w", encoding="utf-8") as f:
                f.write("\n".join(lines[i * 300:(i + 1) * 300]) + "\n")
        for rel, (text, _, _) in FACTS.items():
            os.makedirs(os.path.dirname(os.path.join(docs, rel)), exist_ok=True)
            open(os.path.join(docs, rel), "w", encoding="utf-8").write(text)
        os.makedirs(os.path.join(docs, ".hidden"))
        open(os.path.join(docs, ".hidden", "secret.txt"), "w").write("The capital of Freedonia is Paris.\n")
        open(os.path.join(docs, "blob.txt"), "wb").write(b"\x00\x01binary\x00" * 100)
        ix_path = os.path.join(d, "ix.gguf")
        summary = json.loads(run("index", "build", "--embed-model", MODEL, "-o", ix_path, docs, "--json",
                                 "--chunk-tokens", "128", "--overlap", "16", "-t", "2"))
        check(summary["files"] == 33 and summary["files_skipped"] == 1,
              f"33 files indexed, the binary one skipped, the hidden one never seen: {summary}")
        ix = read_index(ix_path)
        check(not any(".hidden" in p for p in ix["files"]), "hidden directories are skipped")

        # 1. Locations.
        bad = []
        for fi, path in enumerate(ix["files"]):
            data = open(path, "rb").read()
            chunks = [c for c in range(len(ix["text"])) if ix["chunk_file"][c] == fi]
            covered = np.zeros(len(data), dtype=bool)
            prev_end = None
            for c in chunks:
                b0, b1 = ix["byte_begin"][c], ix["byte_end"][c]
                if data[b0:b1].decode("utf-8") != ix["text"][c]:
                    bad.append(f"{path} chunk {c}: text differs from the file's bytes")
                if data[:b0].count(b"\n") + 1 != ix["line_begin"][c] or data[:b1 - 1].count(b"\n") + 1 != ix["line_end"][c]:
                    bad.append(f"{path} chunk {c}: lines {ix['line_begin'][c]}-{ix['line_end'][c]} are wrong")
                if prev_end is not None and b0 > prev_end and data[prev_end:b0].strip():
                    bad.append(f"{path} chunk {c}: a gap before it")
                prev_end = b1
                covered[b0:b1] = True
            words = np.array([not chr(x).isspace() for x in data], dtype=bool)
            if (words & ~covered).any():
                bad.append(f"{path}: a word no chunk holds")
        check(not bad, f"chunk texts, lines and byte ranges match the files and cover them ({bad[:3]})")
        sizes = [len(json.loads(run("tokenize", "-m", MODEL, "--json", "--no-special", "-p", ix["text"][c]))["ids"])
                 for c in range(0, len(ix["text"]), 25)]
        check(max(sizes) <= 128 + 8, f"chunks hold about 128 tokens at most (sampled: max {max(sizes)})")

        # 2. Exact search against NumPy.
        queries = ["the LORD spake unto Moses", "water and the sea", "sons and daughters were born", "a golden candlestick",
                   "What is the capital city of Freedonia?"]
        for q in queries:
            hits = json.loads(run("index", "search", ix_path, q, "-k", "10", "--json"))["hits"]
            qv = np.array(json.loads(run("embed", "-m", MODEL, "--json", "-p", q))["data"][0]["embedding"])
            scores = ix["vectors"] @ qv
            order = np.argsort(-scores, kind="stable")[:10]
            got = [h["chunk"] for h in hits]
            same = all(g == o or abs(scores[g] - scores[o]) <= 1e-6 for g, o in zip(got, order))
            close = all(abs(h["score"] - scores[h["chunk"]]) <= 1e-5 for h in hits)
            check(len(got) == 10 and same and close, f"'{q}': top 10 equal the NumPy ranking ({got[:4]}... vs {order[:4].tolist()}...)")

        # 3. Facts.
        for rel, (_, question, line) in FACTS.items():
            top = json.loads(run("index", "search", ix_path, question, "-k", "1", "--json"))["hits"][0]
            check(top["file"].endswith(rel) and top["line_begin"] <= line <= top["line_end"],
                  f"'{question}' finds {rel}:{line} (got {top['file']}:{top['line_begin']}-{top['line_end']})")

        # 4. Incremental rebuild.
        changed = os.path.join(docs, "bible", "part1", "book13.md")
        with open(changed, "a", encoding="utf-8") as f:
            f.write("An added line about the river Glub and its fish.\n")
        again = json.loads(run("index", "build", "--embed-model", MODEL, "-o", ix_path, docs, "--json",
                               "--chunk-tokens", "128", "--overlap", "16", "-t", "2"))
        check(again["files_embedded"] == 1 and again["files_reused"] == 32,
              f"after one file changed, only it is embedded again: {again['files_embedded']} embedded, "
              f"{again['files_reused']} reused")
        ix2 = read_index(ix_path)
        same_rest = all(
            np.array_equal(ix["vectors"][[c for c in range(len(ix["text"])) if ix["chunk_file"][c] == fi]],
                           ix2["vectors"][[c for c in range(len(ix2["text"])) if ix2["chunk_file"][c] == fi2]])
            for fi, p in enumerate(ix["files"]) for fi2 in [ix2["files"].index(p)] if p != changed)
        check(same_rest, "the unchanged files keep their vectors bit for bit")
        fresh_path = os.path.join(d, "fresh.gguf")
        run("index", "build", "--embed-model", MODEL, "-o", fresh_path, docs, "--chunk-tokens", "128", "--overlap", "16",
            "-t", "2")
        fresh = read_index(fresh_path)
        check(fresh["text"] == ix2["text"] and np.abs(fresh["vectors"] - ix2["vectors"]).max() <= 1e-6,
              "the rebuilt index equals a fresh build")

        # 5. The approximate index (FAISS HNSW: build --ann, search --approx), when longctx has FAISS.
        r = subprocess.run([BIN, "index", "build", "--embed-model", MODEL, "-o", ix_path, docs, "--json", "--ann",
                            "--chunk-tokens", "128", "--overlap", "16", "-t", "2"], capture_output=True, text=True)
        if r.returncode != 0 and "without FAISS" in r.stderr:
            print("(skipped the approximate index: longctx was built without FAISS)")
        else:
            withann = json.loads(r.stdout)
            check(r.returncode == 0 and withann["ann"] and withann["files_embedded"] == 0,
                  f"build --ann over an unchanged index adds the approximate index, embedding nothing: {withann}")
            found = total = 0
            for q in queries:
                exact = [h["chunk"] for h in json.loads(run("index", "search", ix_path, q, "-k", "10", "--json"))["hits"]]
                approx = json.loads(run("index", "search", ix_path, q, "-k", "10", "--json", "--approx"))["hits"]
                found += len(set(exact) & {h["chunk"] for h in approx})
                total += len(exact)
            check(found / total >= 0.95, f"--approx finds the exact top 10 (recall@10 {found / total:.3f})")
            # A change rebuilds it from all the vectors (kept without --ann): the new chunk is in the
            # graph (efSearch past the chunk count: the search reaches every linked chunk).
            with open(changed, "a", encoding="utf-8") as f:
                f.write("The lighthouse keeper of Zarnow polishes brass every Thursday.\n")
            third = json.loads(run("index", "build", "--embed-model", MODEL, "-o", ix_path, docs, "--json",
                                   "--chunk-tokens", "128", "--overlap", "16", "-t", "2"))
            check(third["ann"] and third["files_embedded"] == 1,
                  f"rebuilding an index that has an approximate index rebuilds it: {third}")
            q = "Who polishes brass in Zarnow?"
            exact = json.loads(run("index", "search", ix_path, q, "-k", "50", "--json"))["hits"]
            approx = json.loads(run("index", "search", ix_path, q, "-k", "50", "--json", "--approx", "--ef-search", "2000"))["hits"]
            new = [h["chunk"] for h in exact if "Zarnow" in h["text"]]
            check(new and set(new) <= {h["chunk"] for h in approx} and exact[0]["chunk"] == approx[0]["chunk"],
                  f"--approx finds the chunk the rebuild added (exact: {new}, exact top: {[(h['chunk'], round(h['score'], 4)) for h in exact[:5]]}, "
                  f"approx top: {[(h['chunk'], round(h['score'], 4)) for h in approx[:5]]})")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")


main()
