#!/usr/bin/env python3
"""`longctx serve` through the official `openai` client and raw HTTP.

    python3 tests/serve/server_test.py BUILD/longctx SOURCE_DIR

Starts its own servers on SmolLM2-135M-Instruct (models/, Q4_1), one at a time, and checks:
 1. greedy /v1/completions (streamed and not) give `longctx generate --temp 0 --json`'s text,
    prompt and generated token counts; greedy /v1/chat/completions give `longctx chat --temp 0`'s
    answer (no system message on either side: both render the template's default one); the
    streamed text is the whole text; stream_options.include_usage gives one usage chunk.
 2. 8 concurrent greedy streams (-np 8; completions and chat) give the texts the same requests
    give one at a time, and were batched (far fewer steps than tokens).
 3. prefix cache: a ~1,000-token KJV prefix + question A, then + question B: B reports the
    cached pages (>= 768 tokens) and answers as a --no-prefix-cache server does; a prompt that
    shares the prefix up to the middle of a page (token ids: 900 of the prefix, then others)
    reports 768 and answers as the cold server; two requests sharing a new long prefix sent at
    once compute it once (cached 0 and >= 768) and answer as the cold server. Where the server
    shares at any token (/metrics prefix_share_granularity_tokens 1: rows that do not depend on
    the pass) the cached counts are the whole shared prefixes (900 for the mid-page prompt),
    else their full pages (768).
 4. a client that goes away mid-stream cancels its request: within ~2 s running_sequences is 0,
    the cancelled counter went up, and only the prefix cache holds KV blocks; the same for a
    non-streaming request past its first second (sent chunked), whose long answers still
    arrive whole.
 5. bad input is answered with its status and {"error": {"message": ...}}, and the server keeps
    serving: malformed JSON, wrong field types, max_tokens too large, negative top_k, unknown
    model, unknown path, body over 8 MiB (413); on a server with --ctx 512 --api-key --timeout 2:
    a prompt past the context, missing/wrong key (401; /health stays open), a full queue (503 for a
    third request while two run with -np 2 --max-queue 0), a half-sent body (closed/answered
    within a few seconds), a slow client sending a byte at a time (served).
 6. /v1/models lists one model whose id is accepted as `model`; /tokenize + /detokenize
    round-trip a string, special-token text included.
 And SIGTERM stops the server its own way (it logs "serve: stopping" and exits 0).
Every check runs even when another fails. Exit 0 when all pass, 1 with a "FAIL: ..." line per
failure, 77 when the model or the `openai` package is missing.
The port is picked by the OS, or from LONGCTX_TEST_PORTS="LO-HI" when set.
"""
import ctypes
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

SKIP = 77
BIN, SRC = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
MODEL = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
KJV = os.path.join(SRC, "data", "kjv.txt")
API_KEY = "test-key-3f9a"

failures = []
T0 = time.monotonic()


def log(msg):
    print("[%5.1fs] %s" % (time.monotonic() - T0, msg), flush=True)


def fail(check, msg):
    failures.append("%s: %s" % (check, msg))
    print("FAIL: %s: %s" % (check, msg), flush=True)


class Check:
    """Collects the failures of one numbered check; an exception inside is one more failure."""

    def __init__(self, name):
        self.name, self.n_fail, self.n_ok = name, 0, 0

    def expect(self, cond, msg, ok_msg=None):
        if cond:
            self.n_ok += 1
            if ok_msg:
                log("  ok: " + ok_msg)
        else:
            self.n_fail += 1
            fail(self.name, msg)
        return cond

    def __enter__(self):
        log("== " + self.name)
        return self

    def __exit__(self, typ, val, tb):
        if typ is not None:
            self.n_fail += 1
            fail(self.name, "exception %s: %s" % (typ.__name__, val))
            traceback.print_exception(typ, val, tb, limit=4, file=sys.stdout)
        log("-- %s: %s (%d assertions passed, %d failed)" % (self.name, "PASS" if self.n_fail == 0 else "FAIL",
                                                              self.n_ok, self.n_fail))
        return True  # the next check runs


# ---------------------------------------------------------------------------------------------
# Servers


def _die_with_parent():
    """The server is killed when this test dies (a CTest timeout kills only the test process)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def free_port():
    rng = os.environ.get("LONGCTX_TEST_PORTS")
    if rng:
        lo, hi = (int(x) for x in rng.split("-"))
        for p in range(lo, hi + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                    return p
                except OSError:
                    continue
        raise RuntimeError("no free port in " + rng)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    live = []

    def __init__(self, name, *args):
        self.name, self.args = name, list(args)
        self.proc = None
        self.logf = tempfile.NamedTemporaryFile(prefix="longctx-serve-", suffix=".log", delete=False)
        for attempt in range(3):
            self.port = free_port()
            cmd = [BIN, "serve", "-m", MODEL, "--port", str(self.port)] + self.args
            self.proc = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         preexec_fn=_die_with_parent)
            Server.live.append(self)
            if self._wait_ready():
                log("server %s on port %d: %s" % (name, self.port, " ".join(self.args)))
                return
            self.stop()
            if "cannot listen" not in self.log_text():
                break
        raise RuntimeError("server %s did not become ready; its log:\n%s" % (name, self.log_text()[-3000:]))

    def _wait_ready(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return False
            try:
                st, _ = request(self.port, "GET", "/health", timeout=2)
                if st == 200:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def log_text(self):
        with open(self.logf.name, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s. Returns the exit status (negative: the signal)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in Server.live:
            Server.live.remove(self)
        return self.proc.returncode if self.proc is not None else None

    def client(self, key=API_KEY):
        import openai
        return openai.OpenAI(base_url="http://127.0.0.1:%d/v1" % self.port, api_key=key, max_retries=0, timeout=120)


def stop_all():
    for s in list(Server.live):
        s.stop()


def _on_signal(sig, frame):
    stop_all()
    sys.exit(128 + sig)


# ---------------------------------------------------------------------------------------------
# Raw HTTP


def request(port, method, path, body=None, headers=None, timeout=60):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def read_response(sock, timeout):
    """Reads one HTTP response (Content-Length framed) from a raw socket. Returns (status or None,
    body, seconds until the response was whole or the connection closed, closed: EOF seen)."""
    t0, buf = time.monotonic(), b""
    sock.settimeout(timeout)
    try:
        while True:
            if b"\r\n\r\n" in buf:
                head, _, rest = buf.partition(b"\r\n\r\n")
                m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
                if m and len(rest) >= int(m.group(1)):
                    break
            d = sock.recv(65536)
            if not d:
                return _parsed(buf) + (time.monotonic() - t0, True)
            buf += d
    except socket.timeout:
        return _parsed(buf) + (None, False)
    except OSError:  # reset: what came before it counts
        return _parsed(buf) + (time.monotonic() - t0, True)
    return _parsed(buf) + (time.monotonic() - t0, False)


def dechunk(body):
    """The payload of a chunked transfer-encoded body."""
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += body[:size]
        body = body[size + 2:]
    return out


def _parsed(buf):
    head, _, rest = buf.partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    return (int(m.group(1)) if m else None, rest)


def post(port, path, obj, key=None):
    st, data = request(port, "POST", path, obj, {"Authorization": "Bearer " + key} if key else None)
    return st, (json.loads(data) if data else None)


def metrics(port, key=None):
    st, data = request(port, "GET", "/metrics", headers={"Authorization": "Bearer " + key} if key else None)
    out = {}
    for line in data.decode().splitlines():
        if line and not line.startswith("#"):
            name, val = line.rsplit(" ", 1)
            out[name] = float(val)
    return out


def tokenize(port, text, add_special=False):
    st, j = post(port, "/tokenize", {"content": text, "add_special": add_special})
    assert st == 200, (st, j)
    return j["tokens"]


def is_error_shape(data):
    try:
        j = json.loads(data)
    except ValueError:
        return False
    e = j.get("error") if isinstance(j, dict) else None
    return isinstance(e, dict) and isinstance(e.get("message"), str) and e["message"] != ""


def health_ok(port):
    try:
        return request(port, "GET", "/health", timeout=5)[0] == 200
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# References from the CLI


def cli_generate(prompt, n):
    r = subprocess.run([BIN, "generate", "-m", MODEL, "-p", prompt, "-n", str(n), "--temp", "0", "--json"],
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("generate failed: " + r.stderr.decode(errors="replace"))
    return json.loads(r.stdout)


def cli_chat(message, n):
    """One user turn, no system message (the template's default system text, as the server does)."""
    r = subprocess.run([BIN, "chat", "-m", MODEL, "--temp", "0", "-n", str(n)], input=(message + "\n").encode(),
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError("chat failed: " + r.stderr.decode(errors="replace"))
    out = r.stdout.decode("utf-8")
    assert out.endswith("\n"), repr(out)
    return out[:-1]  # the answer, then one newline


COMPLETION_CASES = [("The capital of France is", 24), ("Once upon a time, in a small village,", 32)]
CHAT_CASES = [("What is the capital of France?", 40), ("Write a haiku about the sea.", 32)]


def short(s, n=70):
    s = repr(s)
    return s if len(s) <= n else s[:n] + "..."


def diff_at(a, b):
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return "differ at char %d: %s vs %s" % (i, short(a[i:i + 40]), short(b[i:i + 40]))


# ---------------------------------------------------------------------------------------------
# 1. Completions and chat against the CLI


def check_vs_cli(srv, model_id, refs):
    with Check("1 completions/chat vs generate/chat CLI") as c:
        cl = srv.client()
        for (prompt, n), ref in zip(COMPLETION_CASES, refs["gen"]):
            r = cl.completions.create(model=model_id, prompt=prompt, max_tokens=n, temperature=0)
            text, u, fr = r.choices[0].text, r.usage, r.choices[0].finish_reason
            c.expect(text == ref["text"], "completion %s: text != generate's: %s" % (short(prompt), diff_at(text, ref["text"])),
                     "completion %s (n=%d): text equals generate's (%d chars, finish %s)" % (short(prompt), n, len(text), fr))
            ntok = len(tokenize(srv.port, prompt, add_special=True))
            c.expect(u.prompt_tokens == ntok == ref["prompt_tokens"],
                     "completion %s: prompt_tokens %d, /tokenize (with BOS as generate) %d, generate %d" %
                     (short(prompt), u.prompt_tokens, ntok, ref["prompt_tokens"]),
                     "prompt_tokens %d = /tokenize with add_special = generate's" % ntok)
            c.expect(u.completion_tokens == ref["generated_tokens"],
                     "completion %s: completion_tokens %d != generate's %d" % (short(prompt), u.completion_tokens,
                                                                              ref["generated_tokens"]))
            c.expect(u.total_tokens == u.prompt_tokens + u.completion_tokens, "total_tokens is not the sum")
            want_fr = "stop" if ref["stopped_at_eos"] else "length"
            c.expect(fr == want_fr, "completion %s: finish_reason %s, generate says %s" % (short(prompt), fr, want_fr))
            if fr == "length":
                c.expect(u.completion_tokens == n, "finish_reason length but completion_tokens %d != max_tokens %d" %
                         (u.completion_tokens, n))
            # Streamed: the same text; the usage on the last chunk (no include_usage).
            parts, usage, last_fr = [], None, None
            for ch in cl.completions.create(model=model_id, prompt=prompt, max_tokens=n, temperature=0, stream=True):
                if ch.choices:
                    parts.append(ch.choices[0].text)
                    last_fr = ch.choices[0].finish_reason or last_fr
                if ch.usage:
                    usage = ch.usage
            c.expect("".join(parts) == text, "completion %s: streamed text != non-streamed: %s" %
                     (short(prompt), diff_at("".join(parts), text)), "streamed in %d chunks, same text" % len(parts))
            c.expect(last_fr == fr, "streamed finish_reason %s != %s" % (last_fr, fr))
            c.expect(usage is not None and usage.completion_tokens == u.completion_tokens and
                     usage.prompt_tokens == u.prompt_tokens, "streamed usage %s != %s" % (usage, u))
            # Streamed with include_usage: one chunk with no choices and the usage, last.
            kinds, usage = [], None
            for ch in cl.completions.create(model=model_id, prompt=prompt, max_tokens=n, temperature=0, stream=True,
                                            stream_options={"include_usage": True}):
                kinds.append("u" if not ch.choices else "c")
                if not ch.choices:
                    usage = ch.usage
            c.expect(kinds.count("u") == 1 and kinds[-1] == "u" and usage.completion_tokens == u.completion_tokens,
                     "completion include_usage: chunks %s, usage %s" % ("".join(kinds), usage))

        for (msg, n), ref in zip(CHAT_CASES, refs["chat"]):
            msgs = [{"role": "user", "content": msg}]
            r = cl.chat.completions.create(model=model_id, messages=msgs, max_tokens=n, temperature=0)
            text, u, fr = r.choices[0].message.content, r.usage, r.choices[0].finish_reason
            c.expect(text == ref, "chat %s: answer != chat CLI's: %s" % (short(msg), diff_at(text, ref)),
                     "chat %s (n=%d): answer equals `longctx chat`'s (%d chars, finish %s)" % (short(msg), n, len(text), fr))
            c.expect(r.choices[0].message.role == "assistant", "chat role is %s" % r.choices[0].message.role)
            c.expect(fr in ("stop", "length"), "chat finish_reason %s" % fr)
            if fr == "length":
                c.expect(u.completion_tokens == n, "chat: finish length but completion_tokens %d != %d" %
                         (u.completion_tokens, n))
            c.expect(u.prompt_tokens > len(tokenize(srv.port, msg)), "chat prompt_tokens %d not above the message's" %
                     u.prompt_tokens)
            parts, roles, kinds, usage = [], [], [], None
            for ch in cl.chat.completions.create(model=model_id, messages=msgs, max_tokens=n, temperature=0,
                                                 stream=True, stream_options={"include_usage": True}):
                if ch.choices:
                    kinds.append("c")
                    d = ch.choices[0].delta
                    if d.role:
                        roles.append(d.role)
                    parts.append(d.content or "")
                else:
                    kinds.append("u")
                    usage = ch.usage
            c.expect("".join(parts) == text, "chat %s: streamed != non-streamed: %s" % (short(msg), diff_at("".join(parts), text)),
                     "chat streamed in %d chunks, same answer" % len(parts))
            c.expect(roles == ["assistant"], "chat stream roles %s" % roles)
            c.expect(kinds.count("u") == 1 and kinds[-1] == "u", "chat include_usage: chunk kinds %s" % "".join(kinds))
            c.expect(usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (u.prompt_tokens, u.completion_tokens),
                     "chat stream usage %s != %s" % (usage, u), "chat usage chunk: prompt %d, completion %d" %
                     (u.prompt_tokens, u.completion_tokens))
        # The raw stream ends with data: [DONE].
        st, data = request(srv.port, "POST", "/v1/completions",
                           {"prompt": "Hello", "max_tokens": 3, "temperature": 0, "stream": True})
        events = [l for l in data.decode().split("\n") if l.startswith("data: ")]
        c.expect(st == 200 and events and events[-1] == "data: [DONE]", "raw stream: status %d, last event %s" %
                 (st, events[-1:] if events else None), "raw SSE stream ends with data: [DONE]")


# ---------------------------------------------------------------------------------------------
# 2. Concurrent streams equal one at a time

CONC_CASES = [
    ("c", "The history of the Roman Empire"),
    ("c", "def fibonacci(n):"),
    ("c", "In a shocking finding, scientists discovered"),
    ("c", "My favourite recipe for apple pie is"),
    ("m", "Tell me a short story about a robot."),
    ("m", "What are the three primary colors?"),
    ("m", "Explain photosynthesis in simple terms."),
    ("m", "Give me three tips for learning to code."),
]
CONC_N = 48


def one_request(cl, model_id, kind, text, stream):
    if kind == "c":
        if not stream:
            r = cl.completions.create(model=model_id, prompt=text, max_tokens=CONC_N, temperature=0)
            return r.choices[0].text, r.usage.completion_tokens
        parts, comp = [], None
        for ch in cl.completions.create(model=model_id, prompt=text, max_tokens=CONC_N, temperature=0, stream=True,
                                        stream_options={"include_usage": True}):
            if ch.choices:
                parts.append(ch.choices[0].text)
            elif ch.usage:
                comp = ch.usage.completion_tokens
        return "".join(parts), comp
    msgs = [{"role": "user", "content": text}]
    if not stream:
        r = cl.chat.completions.create(model=model_id, messages=msgs, max_tokens=CONC_N, temperature=0)
        return r.choices[0].message.content, r.usage.completion_tokens
    parts, comp = [], None
    for ch in cl.chat.completions.create(model=model_id, messages=msgs, max_tokens=CONC_N, temperature=0, stream=True,
                                         stream_options={"include_usage": True}):
        if ch.choices:
            parts.append(ch.choices[0].delta.content or "")
        elif ch.usage:
            comp = ch.usage.completion_tokens
    return "".join(parts), comp


def check_concurrent(srv, model_id):
    with Check("2 8 concurrent streams == one at a time") as c:
        cl = srv.client()
        seq = [one_request(cl, model_id, k, t, False) for k, t in CONC_CASES]
        m0 = metrics(srv.port)
        results, errors = [None] * len(CONC_CASES), []
        times = [[0.0, 0.0] for _ in CONC_CASES]
        barrier = threading.Barrier(len(CONC_CASES))

        def worker(i):
            try:
                mycl = srv.client()
                barrier.wait()
                times[i][0] = time.monotonic()
                results[i] = one_request(mycl, model_id, CONC_CASES[i][0], CONC_CASES[i][1], True)
                times[i][1] = time.monotonic()
            except Exception as e:  # noqa
                errors.append("request %d: %s: %s" % (i, type(e).__name__, e))

        ths = [threading.Thread(target=worker, args=(i,)) for i in range(len(CONC_CASES))]
        t0 = time.monotonic()
        for t in ths:
            t.start()
        for t in ths:
            t.join(300)
        wall = time.monotonic() - t0
        m1 = metrics(srv.port)
        c.expect(not errors, "; ".join(errors))
        for i, ((k, t), s, r) in enumerate(zip(CONC_CASES, seq, results)):
            if r is None:
                continue
            c.expect(r[0] == s[0], "%s %s: concurrent text != alone: %s" % ("completion" if k == "c" else "chat", short(t),
                                                                            diff_at(r[0], s[0])))
            c.expect(r[1] == s[1], "%s: completion_tokens concurrent %s != alone %s" % (short(t), r[1], s[1]))
        if not errors:
            log("  ok: the 8 concurrent streams (4 completions, 4 chats, max_tokens %d) gave the texts they give alone"
                % CONC_N)
        gen = m1["longctx_generated_tokens_total"] - m0["longctx_generated_tokens_total"]
        steps = m1["longctx_steps_total"] - m0["longctx_steps_total"]
        c.expect(gen > 0 and steps < 0.5 * gen, "no batching: %d steps for %d generated tokens" % (steps, gen),
                 "batched: %d steps for %d generated tokens, %.1f s wall" % (steps, gen, wall))


# ---------------------------------------------------------------------------------------------
# 3. Prefix cache


def kjv_passage(offset_chars, n_chars):
    with open(KJV, encoding="utf-8", errors="replace") as f:
        text = f.read()
    start = text.index("\n", offset_chars) + 1
    return text[start:start + n_chars]


def page_floor(n):
    return n // 256 * 256


def common_len(a, b):
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return i


def prefix_requests(port):
    """The prompts of check 3 (built with the first server's /tokenize; the same for all)."""
    p1 = "Read the passage, then answer the question.\n\n" + kjv_passage(200000, 4300) + "\n\n"
    p2 = "Summarise the passage below in one sentence.\n\n" + kjv_passage(900000, 4300) + "\n\n"
    # "Answer: The": SmolLM2 answers (a bare "Answer:" often gets EOS at once, an empty text).
    qa, qb = "Question: Who is speaking in this passage?\nAnswer: The", "Question: What is the main event?\nAnswer: The"
    qc, qd = "Question: What is the main event?\nAnswer: The", "Question: Who is mentioned first?\nAnswer: The"
    ids1 = tokenize(port, p1)
    mid = ids1[:900] + tokenize(port, " And now something different: what is a lighthouse?\nAnswer: A")
    return {"A": p1 + qa, "B": p1 + qb, "mid": mid, "C": p2 + qc, "D": p2 + qd}, len(ids1), len(tokenize(port, p2))


def complete(port, prompt, n=16):
    st, j = post(port, "/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0})
    if st != 200:
        raise RuntimeError("status %d: %s" % (st, j))
    return j["choices"][0]["text"], j["usage"]["prompt_tokens_details"]["cached_tokens"], j["usage"]["prompt_tokens"]


def check_prefix_warm(srv):
    """Runs the warm half on the prefix-caching server; the cold half comes later (one server at a time)."""
    out = {}
    with Check("3a prefix cache (warm server)") as c:
        prompts, n1, n2 = prefix_requests(srv.port)
        out["prompts"] = prompts
        log("  prefix 1: %d tokens, prefix 2: %d tokens" % (n1, n2))
        c.expect(800 <= n1 <= 1300 and 800 <= n2 <= 1300, "prefix sizes %d, %d not ~1,000 tokens" % (n1, n2))
        # Shared at any token where the server's rows do not depend on the pass (integer
        # prefill, CPUs with AMX), else in whole pages.
        step = int(metrics(srv.port).get("longctx_prefix_share_granularity_tokens", 0))
        c.expect(step in (1, 256), "prefix_share_granularity_tokens %d, expected 1 or 256" % step)
        shared = (lambda n: n) if step == 1 else page_floor
        ta, ca, na = complete(srv.port, prompts["A"])
        tb, cb, nb = complete(srv.port, prompts["B"])
        ia, ib = tokenize(srv.port, prompts["A"], True), tokenize(srv.port, prompts["B"], True)
        want = shared(min(common_len(ia, ib), len(ib) - 1))
        c.expect(ca == 0, "first request (A) reports %d cached tokens, expected 0" % ca)
        c.expect(cb >= 768 and cb == want, "B: cached_tokens %d, expected %d (shared %d tokens, >= 768)" %
                 (cb, want, common_len(ia, ib)), "B after A: %d of %d prompt tokens cached" % (cb, nb))
        tm, cm, nm = complete(srv.port, prompts["mid"])
        c.expect(cm == shared(900), "prefix cut at token 900 then other tokens: cached_tokens %d, expected %d" %
                 (cm, shared(900)), "prompt sharing 900 tokens (mid-page): %d cached of %d" % (cm, nm))
        res = [None, None]

        def go(i, key):
            res[i] = complete(srv.port, prompts[key])

        ths = [threading.Thread(target=go, args=(0, "C")), threading.Thread(target=go, args=(1, "D"))]
        for t in ths:
            t.start()
        for t in ths:
            t.join(120)
        ic, idd = tokenize(srv.port, prompts["C"], True), tokenize(srv.port, prompts["D"], True)
        want2 = shared(min(common_len(ic, idd), len(ic) - 1, len(idd) - 1))
        if c.expect(None not in res, "a concurrent request failed"):
            cached = sorted([res[0][1], res[1][1]])
            c.expect(cached == [0, want2] and want2 >= 768,
                     "two requests sharing %d tokens at once: cached %s, expected [0, %d] (the prefix computed once)" %
                     (common_len(ic, idd), cached, want2),
                     "C and D at once: cached %s (the shared prefix computed once)" % cached)
            out["C"], out["D"] = res[0][0], res[1][0]
        out.update(A=ta, B=tb, mid=tm)
        m = metrics(srv.port)
        c.expect(m.get("longctx_prefix_cache_blocks", 0) > 0, "prefix_cache_blocks is 0 after the prefix requests")
    return out


def check_prefix_cold(warm):
    with Check("3b prefix cache answers == --no-prefix-cache server") as c:
        if "prompts" not in warm:
            c.expect(False, "the warm half did not run")
            return
        cold = Server("cold", "--no-prefix-cache", "-np", "2")
        try:
            for key in ("A", "B", "mid", "C", "D"):
                if key not in warm:
                    continue
                t, cached, _ = complete(cold.port, warm["prompts"][key])
                c.expect(cached == 0, "cold server reports %d cached tokens for %s" % (cached, key))
                c.expect(t != "", "%s: the cold answer is empty (a weak comparison)" % key)
                c.expect(t == warm[key], "%s: warm answer != cold answer: %s" % (key, diff_at(warm[key], t)),
                         "%s: warm answer == cold (%s)" % (key, short(t, 40)))
            m = metrics(cold.port)
            c.expect(m.get("longctx_prefix_cache_blocks", -1) == 0 and m.get("longctx_kv_blocks_used", -1) == 0,
                     "cold server: prefix_cache_blocks %s, kv_blocks_used %s (expected 0, 0)" %
                     (m.get("longctx_prefix_cache_blocks"), m.get("longctx_kv_blocks_used")))
        finally:
            cold.stop()


# ---------------------------------------------------------------------------------------------
# 4. Disconnect


def wait_cancelled(srv, m0, limit=2.5):
    """Polls /metrics until nothing runs and one more request was cancelled than in m0.
    Returns (ok, the last metrics, seconds waited)."""
    t0 = time.monotonic()
    key = 'longctx_requests_total{outcome="cancelled"}'
    while True:
        m = metrics(srv.port)
        ok = m["longctx_running_sequences"] == 0 and m[key] == m0[key] + 1
        if ok or time.monotonic() - t0 >= limit:
            return ok, m, time.monotonic() - t0
        time.sleep(0.05)


def check_disconnect(srv):
    with Check("4 disconnect mid-stream cancels") as c:
        m0 = metrics(srv.port)
        # Counting: SmolLM2 goes on for thousands of tokens (no early EOS).
        body = json.dumps({"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 4000,
                           "temperature": 0, "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        buf = b""
        while buf.count(b"data: ") < 3:
            d = s.recv(4096)
            if not d:
                break
            buf += d
        c.expect(buf.startswith(b"HTTP/1.1 200") and buf.count(b"data: ") >= 3, "stream did not start: %r" % buf[:200])
        mid = metrics(srv.port)
        c.expect(mid["longctx_running_sequences"] == 1, "running_sequences %s while streaming" %
                 mid["longctx_running_sequences"])
        s.close()
        ok, m, dt = wait_cancelled(srv, m0)
        c.expect(ok, "2.5 s after the disconnect: running_sequences %s, cancelled %s (was %s)" %
                 (m["longctx_running_sequences"], m['longctx_requests_total{outcome="cancelled"}'],
                  m0['longctx_requests_total{outcome="cancelled"}']),
                 "cancelled %.2f s after the disconnect; running_sequences 0" % dt)
        c.expect(m["longctx_kv_blocks_used"] == m["longctx_prefix_cache_blocks"],
                 "after the cancel kv_blocks_used %s != prefix_cache_blocks %s (blocks leaked?)" %
                 (m["longctx_kv_blocks_used"], m["longctx_prefix_cache_blocks"]),
                 "kv_blocks_used %d == prefix_cache_blocks" % m["longctx_kv_blocks_used"])
        time.sleep(0.1)
        lines = [l for l in srv.log_text().splitlines() if l.endswith(", cancelled")]
        g = int(re.search(r"generated (\d+)", lines[-1]).group(1)) if lines else None
        c.expect(g is not None and g < 4000, "no cancelled request in the server log (or it ran to the end): %s" %
                 lines[-1:], "server log: cancelled after %s of 4000 tokens" % g)
        c.expect(health_ok(srv.port), "/health not 200 after the disconnect")


def check_disconnect_plain(srv):
    with Check("4b disconnect while a non-streaming answer runs cancels") as c:
        m0 = metrics(srv.port)
        body = json.dumps({"prompt": "1, 2, 3, 4, 5, 6,", "max_tokens": 4000, "temperature": 0}).encode()
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        time.sleep(1.5)  # past the first second: the answer is being sent chunked
        s.close()
        ok, m, dt = wait_cancelled(srv, m0)
        c.expect(ok, "2.5 s after the disconnect: running_sequences %s" % m["longctx_running_sequences"],
                 "cancelled %.2f s after the disconnect" % dt)
        # A long non-streaming answer still arrives whole (leading spaces, then the JSON).
        r = srv.client().completions.create(model="default", prompt="1, 2, 3, 4, 5, 6,", max_tokens=300,
                                            temperature=0)
        c.expect(r.usage.completion_tokens == 300 and r.choices[0].finish_reason == "length",
                 "long non-streaming answer: %s" % r.usage, "a 300-token non-streaming answer arrives whole")


# ---------------------------------------------------------------------------------------------
# 5. Bad input


def expect_error(c, port, what, method, path, body, status, headers=None):
    try:
        st, data = request(port, method, path, body, headers, timeout=30)
    except OSError as e:
        return c.expect(False, "%s: no answer (%s)" % (what, e))
    ok = c.expect(st == status and is_error_shape(data), "%s: status %d (want %d), body %s" % (what, st, status, data[:200]),
                  "%s -> %d %s" % (what, st, short(json.loads(data)["error"]["message"], 60) if is_error_shape(data) else ""))
    c.expect(health_ok(port), "%s: /health not 200 afterwards" % what)
    return ok


def check_bad_input(srv, model_id):
    with Check("5a bad input") as c:
        p = srv.port
        C, M = "/v1/completions", "/v1/chat/completions"
        expect_error(c, p, "malformed JSON (completions)", "POST", C, b'{"prompt": "hi", "max_tokens": ', 400)
        expect_error(c, p, "malformed JSON (chat)", "POST", M, b'{"messages": [{"role": "user"', 400)
        expect_error(c, p, "body not an object", "POST", C, b'[1, 2, 3]', 400)
        expect_error(c, p, 'temperature "hot"', "POST", C, {"prompt": "hi", "temperature": "hot"}, 400)
        expect_error(c, p, "messages not an array", "POST", M, {"messages": "hello"}, 400)
        expect_error(c, p, "messages missing", "POST", M, {"model": model_id}, 400)
        expect_error(c, p, 'max_tokens "x"', "POST", C, {"prompt": "hi", "max_tokens": "x"}, 400)
        expect_error(c, p, "max_tokens 10**9", "POST", C, {"prompt": "hi", "max_tokens": 10 ** 9}, 400)
        expect_error(c, p, "max_tokens 10**9 (chat)", "POST", M,
                     {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10 ** 9}, 400)
        expect_error(c, p, "max_tokens 2**64", "POST", C, {"prompt": "hi", "max_tokens": 2 ** 64}, 400)
        expect_error(c, p, "top_k -1", "POST", C, {"prompt": "hi", "top_k": -1}, 400)
        expect_error(c, p, "empty prompt", "POST", C, {"prompt": ""}, 400)
        expect_error(c, p, "token id past the vocabulary", "POST", C, {"prompt": [1, 2, 10 ** 8]}, 400)
        expect_error(c, p, "unknown role", "POST", M, {"messages": [{"role": "wizard", "content": "hi"}]}, 400)
        expect_error(c, p, "unknown model", "POST", C, {"model": "no-such-model", "prompt": "hi"}, 404)
        expect_error(c, p, "unknown model (chat)", "POST", M,
                     {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}, 404)
        expect_error(c, p, "unknown path (POST)", "POST", "/v1/nothing", {"prompt": "hi"}, 404)
        expect_error(c, p, "unknown path (GET)", "GET", "/v1/engines", None, 404)
        # Over 8 MiB: 413 (the body sent whole; the server may answer before reading it all).
        big = b'{"prompt": "' + b"a" * (9 << 20) + b'"}'
        s = socket.create_connection(("127.0.0.1", p), timeout=30)
        try:
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(big))
            try:
                s.sendall(big)
            except OSError:
                pass  # answered and closed before the body was read: the answer is still to be read
            st, rest, dt, _ = read_response(s, 15)
            c.expect(st == 413 and is_error_shape(rest), "9 MiB body: status %s, body %r" % (st, rest[:200]),
                     "9 MiB body -> 413 %s" % (short(json.loads(rest)["error"]["message"], 60) if is_error_shape(rest) else ""))
        finally:
            s.close()
        c.expect(health_ok(p), "/health not 200 after the 9 MiB body")
        r = srv.client().completions.create(model=model_id, prompt="The capital of France is", max_tokens=4, temperature=0)
        c.expect(r.choices[0].text != "", "a normal request after the bad ones gave no text")


def check_limits(model_id, refs):
    with Check("5b --ctx 512 --api-key --timeout 2") as c:
        srv = Server("limits", "--ctx", "512", "--api-key", API_KEY, "--timeout", "2", "-np", "2", "--max-queue", "0")
        try:
            p, auth = srv.port, {"Authorization": "Bearer " + API_KEY}
            c.expect(request(p, "GET", "/health")[0] == 200, "/health without a key is not 200", "/health open without key")
            expect_error(c, p, "no key: /v1/models", "GET", "/v1/models", None, 401)
            expect_error(c, p, "no key: completions", "POST", "/v1/completions", {"prompt": "hi"}, 401)
            expect_error(c, p, "wrong key: completions", "POST", "/v1/completions", {"prompt": "hi"}, 401,
                         {"Authorization": "Bearer wrong"})
            expect_error(c, p, "wrong key: /metrics", "GET", "/metrics", None, 401, {"Authorization": "Bearer wrong"})
            try:
                srv.client(key="wrong").models.list()
                c.expect(False, "openai client with a wrong key: no error")
            except Exception as e:  # openai.AuthenticationError
                c.expect(getattr(e, "status_code", None) == 401, "openai client with a wrong key: %r" % e,
                         "openai client, wrong key: AuthenticationError 401")
            c.expect(request(p, "GET", "/v1/models", headers=auth)[0] == 200, "/v1/models with the key not 200")
            long_prompt = kjv_passage(50000, 4000)
            n_long = len(json.loads(request(p, "POST", "/tokenize", {"content": long_prompt}, auth)[1])["tokens"])
            expect_error(c, p, "prompt of %d tokens, context 512" % n_long, "POST", "/v1/completions",
                         {"prompt": long_prompt, "max_tokens": 8}, 400, auth)
            expect_error(c, p, "chat past the context", "POST", "/v1/chat/completions",
                         {"messages": [{"role": "user", "content": long_prompt}]}, 400, auth)
            expect_error(c, p, "max_tokens 600 > context 512", "POST", "/v1/completions",
                         {"prompt": "hi", "max_tokens": 600}, 400, auth)
            # A prompt that fits: answered.
            fit = kjv_passage(50000, 1500)
            st, j = post(p, "/v1/completions", {"prompt": fit, "max_tokens": 8, "temperature": 0}, API_KEY)
            c.expect(st == 200 and j["usage"]["completion_tokens"] >= 1, "a %s-token prompt in context 512: %d %s" %
                     ("~400", st, str(j)[:200]), "a prompt of %s tokens fits context 512" %
                     (j["usage"]["prompt_tokens"] if st == 200 else "?"))

            # Half-sent body: Content-Length 200, 20 bytes, then nothing. --timeout 2: closed or answered soon.
            s = socket.create_connection(("127.0.0.1", p), timeout=15)
            t0 = time.monotonic()
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode() +
                      b"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n" + b'{"prompt": "hello", ')
            time.sleep(0.3)
            t1 = time.monotonic()
            c.expect(health_ok(p), "/health not answered while a half-sent body stalls",
                     "/health answered in %.2f s while a half-sent body stalls" % (time.monotonic() - t1))
            st, rest, dt_answer, closed = read_response(s, 10)
            dt = time.monotonic() - t0
            c.expect(dt_answer is not None and dt < 6,
                     "half-sent body: no answer and still open %.1f s after the stall began" % dt,
                     "half-sent body: %s after %.1f s (status %s)" % ("closed" if closed else "answered", dt, st))
            if st is not None:
                c.expect(400 <= st < 500 and is_error_shape(rest), "half-sent body answered %s %r" % (st, rest[:100]))
            if st is not None and not closed:
                # The body was not read to its end: the connection cannot carry another request.
                st2, _, dt2, closed2 = read_response(s, 6)
                log("  note: after answering %s the server %s" % (st, "closed the connection %.1f s later" % dt2 if closed2
                                                                  else "kept the connection open"))
            s.close()
            c.expect(health_ok(p), "/health not 200 after the half-sent body")

            # Queue full (-np 2 --max-queue 0): two streams run, a third request gets 503.
            streams = []
            for _ in range(2):
                body = json.dumps({"prompt": "1, 2, 3,", "max_tokens": 400, "temperature": 0, "stream": True}).encode()
                q = socket.create_connection(("127.0.0.1", p), timeout=30)
                q.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode() +
                          b"\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                got = b""
                while b"data: " not in got:
                    d = q.recv(4096)
                    if not d:
                        break
                    got += d
                streams.append(q)
            expect_error(c, p, "third request, 2 running, --max-queue 0", "POST", "/v1/completions",
                         {"prompt": "hi", "max_tokens": 4}, 503, auth)
            for q in streams:
                q.close()

            # Slow client: the body a byte at a time, 40 ms apart (~3.5 s in all, each gap < 2 s).
            prompt, n = COMPLETION_CASES[0]
            body = json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0}).encode()
            s = socket.create_connection(("127.0.0.1", p), timeout=30)
            t0 = time.monotonic()
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + API_KEY.encode() +
                      b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body))
            try:
                for i in range(len(body)):
                    s.sendall(body[i:i + 1])
                    time.sleep(0.04)
                resp = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    resp += d
            except OSError as e:
                resp = b"(error %s)" % str(e).encode()
            finally:
                s.close()
            dt = time.monotonic() - t0
            head, _, rest = resp.partition(b"\r\n\r\n")
            ok = c.expect(head.startswith(b"HTTP/1.1 200"), "slow client (%.1f s): %r" % (dt, resp[:200]))
            if ok:
                # An answer that takes more than a second is sent chunked (spaces first, then the
                # JSON): a slow build (ASan) gets there.
                if b"transfer-encoding: chunked" in head.lower():
                    rest = dechunk(rest)
                text = json.loads(rest)["choices"][0]["text"]
                c.expect(text == refs["gen"][0]["text"], "slow client: text != generate's: %s" %
                         diff_at(text, refs["gen"][0]["text"]),
                         "slow client (body a byte per 40 ms, %.1f s > --timeout 2): served, text == generate's" % dt)
            c.expect(health_ok(p), "/health not 200 after the slow client")
        finally:
            srv.stop()


# ---------------------------------------------------------------------------------------------
# 6. Models, tokenize


def check_models_tokenize(srv):
    model_id = None
    with Check("6 /v1/models, /tokenize + /detokenize") as c:
        st, data = request(srv.port, "GET", "/v1/models")
        j = json.loads(data)
        c.expect(st == 200 and j.get("object") == "list" and len(j.get("data", [])) == 1,
                 "/v1/models: %d %s" % (st, data[:200]))
        model_id = j["data"][0]["id"]
        ids = [m.id for m in srv.client().models.list()]
        c.expect(ids == [model_id], "openai client models.list() %s" % ids, "one model: %s" % model_id)
        r = srv.client().completions.create(model=model_id, prompt="Hi", max_tokens=2, temperature=0)
        c.expect(r.model == model_id and len(r.choices) == 1, "model id not accepted: %s" % r,
                 "its id is accepted as model")
        for text in ["Hello, world! The quick brown fox.", "Ünïcödé ✓ 日本語 🙂\n\ttabs  and   spaces"]:
            st, j = post(srv.port, "/tokenize", {"content": text})
            toks = j["tokens"] if st == 200 else None
            st2, j2 = post(srv.port, "/detokenize", {"tokens": toks or []})
            c.expect(st == 200 and st2 == 200 and j2["content"] == text,
                     "round trip of %s: %d %d %s" % (short(text), st, st2, short(j2 and j2.get("content"))),
                     "round trip of %s (%d tokens)" % (short(text, 40), len(toks or [])))
        # Special-token text: /tokenize parses it to special ids, /detokenize writes them back.
        special = "<|im_start|>user\nhi<|im_end|>"
        toks = post(srv.port, "/tokenize", {"content": special})[1]["tokens"]
        back = post(srv.port, "/detokenize", {"tokens": toks})[1]["content"]
        c.expect(back == special and len(toks) == 5, "special tokens: %s -> %s -> %s" % (short(special), toks, short(back)),
                 "special tokens round trip: %s" % toks)
        expect_error(c, srv.port, "/tokenize without content", "POST", "/tokenize", {"text": "x"}, 400)
        expect_error(c, srv.port, "/detokenize bad id", "POST", "/detokenize", {"tokens": [-1]}, 400)
    return model_id


# ---------------------------------------------------------------------------------------------


def main():
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    if not os.path.exists(MODEL):
        print("SKIP: %s is missing (scripts/fetch_model.sh)" % MODEL)
        return SKIP
    try:
        import openai  # noqa: F401
    except ImportError as e:
        print("SKIP: the openai package is missing (%s); run scripts/setup_serve.sh" % e)
        return SKIP
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    log("references: longctx generate / chat --temp 0")
    refs = {"gen": [cli_generate(p, n) for p, n in COMPLETION_CASES], "chat": [cli_chat(m, n) for m, n in CHAT_CASES]}
    for (p, n), g in zip(COMPLETION_CASES, refs["gen"]):
        log("  generate %s -n %d: %d prompt tokens, %d generated, eos %s" % (short(p, 40), n, g["prompt_tokens"],
                                                                             g["generated_tokens"], g["stopped_at_eos"]))
    try:
        main_srv = Server("main", "-np", "8")
        try:
            model_id = check_models_tokenize(main_srv) or os.path.basename(MODEL)
            check_vs_cli(main_srv, model_id, refs)
            check_concurrent(main_srv, model_id)
            warm = check_prefix_warm(main_srv)
            check_disconnect(main_srv)
            check_disconnect_plain(main_srv)
            check_bad_input(main_srv, model_id)
            with Check("server main still alive") as c:
                c.expect(main_srv.alive(), "the main server died; log tail:\n" + main_srv.log_text()[-2000:])
        finally:
            rc = main_srv.stop()
        with Check("SIGTERM stops the server its own way") as c:
            c.expect(rc == 0 and "serve: stopping" in main_srv.log_text(),
                     "SIGTERM: exit status %s, log tail %s" % (rc, main_srv.log_text()[-300:]),
                     "exit 0 after 'serve: stopping'")
        check_prefix_cold(warm)
        check_limits(model_id, refs)
    except Exception as e:
        fail("harness", "%s: %s" % (type(e).__name__, e))
        traceback.print_exc(file=sys.stdout)
    finally:
        stop_all()
    log("done in %.1f s: %d failure(s)" % (time.monotonic() - T0, len(failures)))
    for f in failures:
        print("FAIL: " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
