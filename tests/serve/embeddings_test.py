#!/usr/bin/env python3
"""`longctx serve` on an encoder: /v1/embeddings through the official `openai` client and raw HTTP.

    python3 tests/serve/embeddings_test.py BUILD/longctx SOURCE_DIR

Serves all-MiniLM-L6-v2 (models/, from scripts/fetch_model.sh) and checks:
 1. the openai client's embeddings.create (a list of texts; the client asks for base64) gives
    the vectors `longctx embed --json` gives for the same texts (max |diff| <= 1e-6), in order,
    with usage.prompt_tokens the texts' token count;
 2. encoding_format "float" over raw HTTP, a single string, and token-id input (the ids
    `longctx tokenize` gives) give the same vectors;
 3. bad input gets its status and OpenAI's error shape, and the server keeps serving: no input,
    an empty string, a token id outside the vocabulary, a wrong encoding_format, an unknown model
    (404), and completions on an encoder (400);
 4. SIGTERM stops it with exit status 0.
Exit 77 when the model or the `openai` package is missing.
"""
import base64
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np

BIN, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MODEL = os.path.join(SRC, "models", "all-MiniLM-L6-v2")
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what, flush=True)
    if not ok:
        failures.append(what)


def request(port, method, path, body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request(method, path, body=None if body is None else json.dumps(body),
              headers={"Content-Type": "application/json"})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, json.loads(data) if data else None


def main():
    try:
        import openai
    except ImportError:
        print("SKIP: the openai package is missing (scripts/setup_serve.sh installs it)")
        return 77
    if not os.path.isdir(MODEL):
        print(f"SKIP: {MODEL} is missing (scripts/fetch_model.sh)")
        return 77
    texts = ["A man is eating food.", "The weather is lovely today.", "北京欢迎你。",
             "In the beginning God created the heaven and the earth. " * 3, "Ça va? Très bien!"]
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "texts.txt")
        open(path, "w", encoding="utf-8").write("\n".join(texts) + "\n")
        r = subprocess.run([BIN, "embed", "-m", MODEL, "-f", path, "--json", "-t", "2"], capture_output=True, text=True)
        if r.returncode != 0:
            print("FAIL: embed: " + r.stderr)
            return 1
        want_json = json.loads(r.stdout)
    want = np.array([e["embedding"] for e in want_json["data"]])

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.NamedTemporaryFile(prefix="longctx-serve-embed-", suffix=".log", delete=False)
    proc = subprocess.Popen([BIN, "serve", "-m", MODEL, "--port", str(port), "-t", "2"], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end:
            try:
                if request(port, "GET", "/health")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        else:
            print("FAIL: the server did not become ready: " + open(log.name).read()[-2000:])
            return 1
        model_id = "all-MiniLM-L6-v2"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        got = client.embeddings.create(model=model_id, input=texts)
        vecs = np.array([e.embedding for e in sorted(got.data, key=lambda e: e.index)])
        check(vecs.shape == want.shape and np.abs(vecs - want).max() <= 1e-6,
              f"openai client embeddings equal `longctx embed` (max |diff| {np.abs(vecs - want).max():.2e})")
        check(got.usage.prompt_tokens == want_json["usage"]["prompt_tokens"],
              f"usage.prompt_tokens {got.usage.prompt_tokens} = {want_json['usage']['prompt_tokens']}")

        st, body = request(port, "POST", "/v1/embeddings", {"input": texts, "encoding_format": "float"})
        flo = np.array([e["embedding"] for e in body["data"]]) if st == 200 else None
        check(st == 200 and np.abs(flo - want).max() <= 1e-6, "encoding_format float over raw HTTP")
        st, body = request(port, "POST", "/v1/embeddings", {"input": texts[2], "encoding_format": "base64"})
        one = np.frombuffer(base64.b64decode(body["data"][0]["embedding"]), dtype="<f4") if st == 200 else None
        check(st == 200 and np.abs(one - want[2]).max() <= 1e-6, "a single string, base64")
        r = subprocess.run([BIN, "tokenize", "-m", MODEL, "--json", "-p", texts[1]], capture_output=True, text=True)
        ids = json.loads(r.stdout)["ids"]
        st, body = request(port, "POST", "/v1/embeddings", {"input": [ids]})
        check(st == 200 and np.abs(np.array(body["data"][0]["embedding"]) - want[1]).max() <= 1e-6,
              "token-id input embeds as its text")

        for what, payload, status in [("no input", {}, 400), ("an empty string", {"input": ""}, 400),
                                      ("a token id outside the vocabulary", {"input": [[5, 99999999]]}, 400),
                                      ("a wrong encoding_format", {"input": "x", "encoding_format": "int8"}, 400),
                                      ("an unknown model", {"input": "x", "model": "nope"}, 404)]:
            st, body = request(port, "POST", "/v1/embeddings", payload)
            check(st == status and "message" in (body or {}).get("error", {}),
                  f"{what}: {st} {json.dumps(body)[:120]}")
        st, body = request(port, "POST", "/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
        check(st == 400 and "encoder" in body["error"]["message"], f"chat on an encoder: {st}")
        check(request(port, "GET", "/health")[0] == 200, "still serving after the bad requests")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = -9
    check(rc == 0, f"SIGTERM: exit status {rc}")
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


sys.exit(main())
