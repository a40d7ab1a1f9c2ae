#!/usr/bin/env python3
"""Serving benchmark for OpenAI-compatible servers: `longctx serve` against llama-cpp-python's own
OpenAI server (`python3 -m llama_cpp.server`), same GGUF file, same threads, one after the other on
the same port, in one run. Standard library only (http.client, threads).

Per server:
  1. start it (or use --url), wait for GET /health = 200 (503 = still loading; a server without
     /health, like llama-cpp-python's, is ready when GET /v1/models answers 200), one warm-up request;
  2. throughput: at each concurrency C (default 1,4,8,16) C client threads send streaming chat
     completions (greedy: temperature 0, fixed max_tokens, prompts that ask for long answers;
     `ignore_eos` is not standard, so the actual generated counts are reported). Per round:
       aggregate tokens/s = all generated tokens / wall time of the round,
       TTFT p50/p99      = request sent -> first SSE chunk with non-empty text,
       per-stream tok/s  = (tokens - 1) / (last chunk - first text chunk), median over requests.
     Generated tokens come from `usage.completion_tokens` when the stream carries it
     (stream_options.include_usage), else from the number of chunks with non-empty text (one token
     per chunk: llama-cpp-python sends no usage when streaming);
  3. shared prefix: a ~2,000-token common prefix (King James Bible text from data/kjv.txt, as the
     system message) + a different short question per request, one request at a time: the first
     one cold, then --prefix-requests - 1 more; reports the cold TTFT, the median TTFT of the later
     ones and cold/warm. A last non-streaming request (max_tokens 1) reads the prompt size and
     `usage.prompt_tokens_details.cached_tokens` when the server reports them.
Prints Markdown tables; with two or more servers a ratio table (server / reference, the reference
being llamacpp unless --reference says otherwise); --json FILE writes everything.

  python3 bench/serve_bench.py --servers longctx,llamacpp [-t 2] [--ctx 4096] [--slots 16]
          [--concurrency 1,4,8,16] [--max-tokens 128] [--quick] [--json out.json]
  python3 bench/serve_bench.py --server llamacpp --quick              # one server
  python3 bench/serve_bench.py --cmd 'build/longctx serve -m M --host 127.0.0.1 --port {port}' --name x
  python3 bench/serve_bench.py --url http://127.0.0.1:8080 --name running-server

llama-cpp-python's server is started through this file (`serve_bench.py llamacpp-server ARGS`, a
wrapper that runs `llama_cpp.server` in the same process) so that two things can be set:
  * use_extra_bufts = False: on CPUs with AMX (the development machine's Xeon has AMX_INT8),
    llama.cpp 0.3.36's extra CPU weight buffers (AMX repacking) crash the server with SIGSEGV on the
    first request with SmolLM2-135M Q4_1 (seen: exit 139). The wrapper patches
    llama_cpp.llama_cpp.llama_model_default_params, as tests/hf/compare_hf.py does, so the model
    loads on llama.cpp's plain CPU path (the same weights and arithmetic, no repack).
    `--llamacpp-extra-bufts` keeps llama.cpp's default instead (on CPUs where it works);
  * its server options: --interrupt_requests false (its default, true, ends the running stream as
    soon as another request arrives, which would cut every concurrent stream short),
    --logits_all false (its server default, true, computes vocabulary logits for every prompt
    token), --n_threads and --n_threads_batch both = -t, --n_ctx = --ctx, --verbose false.
    It serves one request at a time (a lock around its single context) and keeps the previous
    request's tokens in that context, so a prompt sharing a prefix with the previous one reuses it.
  Every request to it also carries "repeat_penalty": 1.0 (its default is 1.1, applied even under
  temperature 0), so both servers decode plain greedy; see --extra-body.
Requirements: llama-cpp-python plus `fastapi uvicorn sse-starlette starlette-context
pydantic-settings` for the reference.
"""
import argparse
import http.client
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# Prompts that make a 135M instruct model write long answers (it stops early on short questions).
LONG_PROMPTS = [
    "Write a long story about a dragon who learns to read. Describe every day of its journey in detail.",
    "Explain step by step, in great detail, how a car engine works, from the fuel tank to the wheels.",
    "Write a detailed essay about the history of the Roman Empire, from its founding to its fall.",
    "Write a long poem about the sea, the wind and the sailors who cross it, with many verses.",
    "Describe, in detail, a journey across a great desert: the people, the animals, the weather and the nights.",
    "Write a long letter from a grandmother to her grandson giving him advice about life, work and friendship.",
    "Explain in detail how plants grow, from the seed to the flower, and what they need at each stage.",
    "Write a long adventure story about two friends who find a map to a hidden city in the mountains.",
]

PREFIX_QUESTIONS = [
    "Who is the first person named in the text above? Answer in one sentence.",
    "What did God create on the first day, according to the text above?",
    "Summarise the text above in two sentences.",
    "Which animals are mentioned in the text above?",
    "What is the name of the garden in the text above?",
    "List three places named in the text above.",
    "What happens to the serpent in the text above?",
    "Who are the sons of Adam in the text above?",
    "What is said about the rivers in the text above?",
    "Which day did God rest, according to the text above?",
    "What was made from the rib, according to the text above?",
    "What is the tree in the middle of the garden called in the text above?",
    "Describe the firmament as the text above does.",
    "Who names the animals in the text above?",
    "What was the punishment of the woman in the text above?",
    "What did Cain do in the text above?",
]


# ----------------------------------------------------------------------------------------------
# llama-cpp-python server wrapper (runs in this process: `serve_bench.py llamacpp-server ARGS`)

def llamacpp_server_main(argv):
    import runpy
    keep = "--keep-extra-bufts" in argv
    argv = [a for a in argv if a != "--keep-extra-bufts"]
    if not keep:
        import llama_cpp
        import llama_cpp.llama_cpp as C
        default_params = C.llama_model_default_params

        def params_without_extra_buffers():
            p = default_params()
            p.use_extra_bufts = False  # no AMX repack: it crashes llama.cpp 0.3.36 on this CPU
            return p

        C.llama_model_default_params = params_without_extra_buffers  # what llama_cpp.Llama calls
        llama_cpp.llama_model_default_params = params_without_extra_buffers  # the package's re-export
        print("serve_bench: llama-cpp-python server with use_extra_bufts=False", file=sys.stderr, flush=True)
    sys.argv = ["llama_cpp.server"] + argv
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


# ----------------------------------------------------------------------------------------------
# HTTP / SSE client

class Result:
    __slots__ = ("ok", "error", "t_start", "t_first", "t_end", "n_chunks", "usage", "text", "finish_reason",
                 "disconnected", "prompt_idx", "max_gap")

    def __init__(self):
        self.ok = False
        self.error = None
        self.t_start = self.t_first = self.t_end = None
        self.n_chunks = 0          # chunks with non-empty text
        self.usage = None
        self.text = ""
        self.finish_reason = None
        self.disconnected = False
        self.prompt_idx = None
        self.max_gap = 0.0         # longest wait between two SSE events after the first text (stalls)

    @property
    def tokens(self):
        if self.usage and isinstance(self.usage.get("completion_tokens"), int):
            return self.usage["completion_tokens"]
        return self.n_chunks

    @property
    def tokens_from_usage(self):
        return bool(self.usage and isinstance(self.usage.get("completion_tokens"), int))

    @property
    def ttft(self):
        return None if self.t_first is None else self.t_first - self.t_start

    @property
    def stream_rate(self):
        if self.t_first is None or self.tokens < 2 or self.t_end <= self.t_first:
            return None
        return (self.tokens - 1) / (self.t_end - self.t_first)

    def cached_tokens(self):
        if not self.usage:
            return None
        d = self.usage.get("prompt_tokens_details") or {}
        return d.get("cached_tokens")


class Client:
    def __init__(self, url, endpoint="chat", model=None, extra_body=None, timeout=600.0):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path.rstrip("/")
        self.endpoint = endpoint
        self.model = model
        self.extra_body = extra_body or {}
        self.timeout = timeout

    def _conn(self, timeout=None):
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout or self.timeout)

    def get(self, path, timeout=10.0):
        c = self._conn(timeout)
        try:
            c.request("GET", self.base + path)
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def body(self, prompt=None, messages=None, max_tokens=128, stream=True):
        b = {"max_tokens": max_tokens, "temperature": 0, "stream": stream}
        if self.model:
            b["model"] = self.model
        if stream:
            b["stream_options"] = {"include_usage": True}
        if self.endpoint == "chat":
            b["messages"] = messages if messages is not None else [{"role": "user", "content": prompt}]
        else:
            if prompt is None:  # flatten messages for the completions endpoint
                prompt = "\n\n".join(m["content"] for m in messages)
            b["prompt"] = prompt
        b.update(self.extra_body)
        return b

    def path(self):
        return self.base + ("/v1/chat/completions" if self.endpoint == "chat" else "/v1/completions")

    def _text_of(self, choice):
        if self.endpoint == "chat":
            d = choice.get("delta") or choice.get("message") or {}
            return d.get("content") or ""
        return choice.get("text") or ""

    def stream(self, body, disconnect_after=None):
        """One streaming request. disconnect_after=K: close the socket after K chunks with text."""
        r = Result()
        c = self._conn()
        data = json.dumps(body).encode()
        r.t_start = time.perf_counter()
        try:
            c.request("POST", self.path(), body=data, headers={"Content-Type": "application/json",
                                                                "Accept": "text/event-stream"})
            resp = c.getresponse()
            if resp.status != 200:
                r.error = f"HTTP {resp.status}: {resp.read()[:300].decode('utf-8', 'replace')}"
                r.t_end = time.perf_counter()
                return r
            done = False
            while True:
                line = resp.readline()
                if not line:
                    break
                line = line.strip()
                if not line or line.startswith(b":") or not line.startswith(b"data:"):
                    continue  # blank separator, comment/ping, event:/id: fields
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    break
                now = time.perf_counter()
                try:
                    obj = json.loads(payload)
                except ValueError:
                    r.error = f"bad SSE data: {payload[:200]!r}"
                    break
                if "error" in obj and not obj.get("choices"):
                    r.error = f"error event: {json.dumps(obj)[:300]}"
                    break
                if obj.get("usage"):
                    r.usage = obj["usage"]
                for ch in obj.get("choices") or []:
                    t = self._text_of(ch)
                    if t:
                        if r.t_first is None:
                            r.t_first = now
                        r.text += t
                        r.n_chunks += 1
                    if ch.get("finish_reason"):
                        r.finish_reason = ch["finish_reason"]
                if r.t_first is not None and r.t_end is not None and r.t_end >= r.t_first:
                    r.max_gap = max(r.max_gap, now - r.t_end)
                r.t_end = now
                if disconnect_after is not None and r.n_chunks >= disconnect_after:
                    r.disconnected = True
                    break
            if r.t_end is None:
                r.t_end = time.perf_counter()
            if r.disconnected:
                r.ok = True
            elif r.error is None:
                if not done:
                    r.error = "stream ended without data: [DONE]"
                else:
                    r.ok = True
        except (OSError, http.client.HTTPException) as e:
            r.error = f"{type(e).__name__}: {e}"
            r.t_end = time.perf_counter()
        finally:
            if r.disconnected and c.sock is not None:
                try:  # an abrupt close, as a client that goes away mid-stream
                    c.sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            c.close()
        return r

    def complete(self, body):
        """One non-streaming request; returns a Result (text, usage, finish_reason)."""
        r = Result()
        body = dict(body, stream=False)
        body.pop("stream_options", None)
        c = self._conn()
        r.t_start = time.perf_counter()
        try:
            c.request("POST", self.path(), body=json.dumps(body).encode(),
                      headers={"Content-Type": "application/json"})
            resp = c.getresponse()
            raw = resp.read()
            r.t_end = time.perf_counter()
            if resp.status != 200:
                r.error = f"HTTP {resp.status}: {raw[:300].decode('utf-8', 'replace')}"
                return r
            obj = json.loads(raw)
            ch = (obj.get("choices") or [{}])[0]
            r.text = self._text_of(ch)
            r.finish_reason = ch.get("finish_reason")
            r.usage = obj.get("usage")
            r.ok = True
        except (OSError, ValueError, http.client.HTTPException) as e:
            r.error = f"{type(e).__name__}: {e}"
            r.t_end = time.perf_counter()
        finally:
            c.close()
        return r


def model_id(client):
    try:
        st, txt = client.get("/v1/models")
        if st == 200:
            data = json.loads(txt).get("data") or []
            if data:
                return data[0].get("id")
    except (OSError, ValueError, http.client.HTTPException):
        pass
    return None


def health_ok(client, timeout=5.0):
    """True when ready: /health 200, or (no /health route) /v1/models 200."""
    st, _ = client.get("/health", timeout=timeout)
    if st == 200:
        return True
    if st in (404, 405):
        st2, _ = client.get("/v1/models", timeout=timeout)
        return st2 == 200
    return False


# ----------------------------------------------------------------------------------------------
# Starting and stopping servers

def port_in_use(host, port):
    s = socket.socket()
    s.settimeout(0.5)
    try:
        return s.connect_ex((host, port)) == 0
    finally:
        s.close()


def server_command(kind, a, port):
    if kind == "longctx":
        if not os.path.exists(a.longctx_bin):
            raise SystemExit(f"serve_bench: {a.longctx_bin} not found: build it first (cmake --build build --target longctx)")
        return [a.longctx_bin, "serve", "-m", a.model, "--host", a.host, "--port", str(port),
                "-np", str(a.slots), "--ctx", str(a.ctx), "-t", str(a.threads)]
    if kind == "llamacpp":
        cmd = [sys.executable, os.path.abspath(__file__), "llamacpp-server",
               "--model", a.model, "--host", a.host, "--port", str(port),
               "--n_threads", str(a.threads), "--n_threads_batch", str(a.threads), "--n_ctx", str(a.ctx),
               "--interrupt_requests", "false", "--logits_all", "false", "--verbose", "false"]
        if a.llamacpp_extra_bufts:
            cmd.append("--keep-extra-bufts")
        cmd += shlex.split(a.llamacpp_args)
        return cmd
    raise SystemExit(f"serve_bench: unknown server kind {kind!r} (longctx, llamacpp)")


def default_extra_body(kind):
    return {"repeat_penalty": 1.0} if kind == "llamacpp" else {}


class Server:
    """A server process this script started (its own PID; stopped with SIGTERM, then SIGKILL)."""

    def __init__(self, cmd, host, port, log_dir=None, name="server"):
        self.cmd, self.host, self.port, self.name = cmd, host, port, name
        if port_in_use(host, port):
            raise SystemExit(f"serve_bench: port {port} on {host} is already in use; choose another --port")
        fd, self.log_path = tempfile.mkstemp(prefix=f"serve_{name}_", suffix=".log", dir=log_dir)
        self.log = os.fdopen(fd, "wb")
        print(f"[{name}] starting: {shlex.join(cmd)}  (log: {self.log_path})", flush=True)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=ROOT)
        self.pid = self.proc.pid
        self.url = f"http://{host}:{port}"

    def log_tail(self, n=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout=180.0):
        c = Client(self.url)
        t0 = time.time()
        saw_503 = False
        while time.time() - t0 < timeout:
            if self.proc.poll() is not None:
                raise SystemExit(f"[{self.name}] exited with {self.proc.returncode} before it was ready:\n"
                                 + self.log_tail())
            try:
                st, _ = c.get("/health", timeout=2.0)
                if st == 200:
                    break
                if st == 503:
                    saw_503 = True
                elif st in (404, 405) and c.get("/v1/models", timeout=5.0)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        else:
            self.stop()
            raise SystemExit(f"[{self.name}] not ready after {timeout:.0f} s:\n" + self.log_tail())
        dt = time.time() - t0
        print(f"[{self.name}] ready after {dt:.1f} s (pid {self.pid}{', 503 while loading' if saw_503 else ''})",
              flush=True)
        return dt

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                print(f"[{self.name}] did not exit 20 s after SIGTERM; SIGKILL", flush=True)
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        rc = self.proc.returncode
        # wait until the port is free again for the next server
        t0 = time.time()
        while port_in_use(self.host, self.port) and time.time() - t0 < 30:
            time.sleep(0.2)
        return rc


def read_rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def find_listening_pid(port):
    """PID of the process listening on TCP `port` (via /proc/net/tcp{,6} inodes and /proc/*/fd)."""
    inodes = set()
    for fn in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(fn) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                        inodes.add(p[9])
        except OSError:
            pass
    if not inodes:
        return None
    targets = {f"socket:[{i}]" for i in inodes}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                        return int(pid)
                except OSError:
                    pass
        except OSError:
            pass
    return None


# ----------------------------------------------------------------------------------------------
# Statistics

def percentile(xs, p):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def fmt(x, nd=1, scale=1.0):
    return "—" if x is None else f"{x * scale:.{nd}f}"


def fmt_ratio(x):
    return "—" if x is None else (f"{x:.2f}x" if x >= 0.1 else f"{x:.2g}x")


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


# ----------------------------------------------------------------------------------------------
# Scenarios

def run_round(client, concurrency, n_requests, max_tokens, prompt_offset=0):
    jobs = queue.Queue()
    for i in range(n_requests):
        jobs.put(i)
    results = [None] * n_requests
    barrier = threading.Barrier(concurrency)

    def worker():
        barrier.wait()
        while True:
            try:
                i = jobs.get_nowait()
            except queue.Empty:
                return
            p = LONG_PROMPTS[(prompt_offset + i) % len(LONG_PROMPTS)]
            results[i] = client.stream(client.body(prompt=p, max_tokens=max_tokens))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r is not None and r.ok]
    errors = [r.error for r in results if r is None or not r.ok]
    gen = sum(r.tokens for r in ok)
    return {
        "concurrency": concurrency,
        "requests": n_requests,
        "ok": len(ok),
        "errors": len(errors),
        "error_samples": errors[:3],
        "wall_s": wall,
        "generated_tokens": gen,
        "tokens_from_usage": all(r.tokens_from_usage for r in ok) if ok else False,
        "mean_tokens_per_request": gen / len(ok) if ok else 0,
        "hit_max_tokens": sum(1 for r in ok if r.tokens >= max_tokens),
        "aggregate_tok_s": gen / wall if wall > 0 else None,
        "ttft_p50_s": percentile([r.ttft for r in ok], 50),
        "ttft_p99_s": percentile([r.ttft for r in ok], 99),
        "stream_tok_s_p50": percentile([r.stream_rate for r in ok], 50),
        "stream_tok_s_min": percentile([r.stream_rate for r in ok], 0),
        "max_chunk_gap_s": max((r.max_gap for r in ok), default=None),
        "per_request": [{"ttft_s": r.ttft, "total_s": r.t_end - r.t_start, "tokens": r.tokens,
                         "max_chunk_gap_s": r.max_gap, "finish_reason": r.finish_reason}
                        for r in results if r is not None and r.ok],
    }


def prefix_text(n_tokens, chars_per_token=3.9, offset=0):
    path = os.path.join(ROOT, "data", "kjv.txt")
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(offset + int(n_tokens * chars_per_token) + 4096)
    except OSError:
        raise SystemExit(f"serve_bench: {path} is missing (bash scripts/corpus.sh writes it)")
    text = text[offset:]
    cut = text.rfind("\n", 0, int(n_tokens * chars_per_token))
    return text[:cut if cut > 0 else int(n_tokens * chars_per_token)]


def run_prefix(client, n_tokens, n_requests, max_tokens):
    prefix = prefix_text(n_tokens)
    system = "Read the following text carefully, then answer the question about it.\n\n" + prefix
    n_requests = max(2, min(n_requests, len(PREFIX_QUESTIONS) - 1))

    def msgs(q):
        return [{"role": "system", "content": system}, {"role": "user", "content": q}]

    rs = []
    for i in range(n_requests):
        r = client.stream(client.body(messages=msgs(PREFIX_QUESTIONS[i]), max_tokens=max_tokens))
        if not r.ok:
            return {"error": r.error}
        rs.append(r)
    # prompt size and cached tokens as the server reports them, with one more (non-streaming) question
    probe = client.complete(client.body(messages=msgs(PREFIX_QUESTIONS[n_requests]), max_tokens=1))
    usage = probe.usage or {}
    cold = rs[0].ttft
    warm = percentile([r.ttft for r in rs[1:]], 50)
    return {
        "prefix_chars": len(prefix),
        "prompt_tokens": usage.get("prompt_tokens"),
        "cached_tokens_probe": probe.cached_tokens() if probe.ok else None,
        "cached_tokens_stream": [r.cached_tokens() for r in rs],
        "requests": n_requests,
        "max_tokens": max_tokens,
        "ttft_cold_s": cold,
        "ttft_warm_p50_s": warm,
        "ttft_warm_all_s": [r.ttft for r in rs[1:]],
        "cold_over_warm": ratio(cold, warm),
        "probe_error": probe.error,
    }


def bench_server(name, url, a, pid=None, extra_body=None):
    client = Client(url, endpoint=a.endpoint, extra_body=extra_body, timeout=a.request_timeout)
    client.model = model_id(client)
    out = {"name": name, "url": url, "model_id": client.model, "extra_body": extra_body or {},
           "endpoint": a.endpoint, "max_tokens": a.max_tokens, "throughput": [], "prefix": None}
    w = client.stream(client.body(prompt=LONG_PROMPTS[0], max_tokens=min(8, a.max_tokens)))
    if not w.ok:
        raise SystemExit(f"[{name}] warm-up request failed: {w.error}")
    scen = a.scenarios.split(",")
    if "throughput" in scen:
        for c in a.concurrency:
            n = max(c * a.requests_per_client, a.min_requests)
            r = run_round(client, c, n, a.max_tokens)
            out["throughput"].append(r)
            print(f"[{name}] c={c:<3} {r['ok']}/{n} ok, {r['generated_tokens']} tokens in {r['wall_s']:.1f} s: "
                  f"{fmt(r['aggregate_tok_s'])} tok/s, TTFT p50 {fmt(r['ttft_p50_s'], 0, 1e3)} ms "
                  f"p99 {fmt(r['ttft_p99_s'], 0, 1e3)} ms, per-stream {fmt(r['stream_tok_s_p50'])} tok/s, "
                  f"longest gap between chunks {fmt(r['max_chunk_gap_s'], 0, 1e3)} ms"
                  + (f", errors: {r['error_samples']}" if r["errors"] else ""), flush=True)
    if "prefix" in scen:
        p = run_prefix(client, a.prefix_tokens, a.prefix_requests, a.prefix_max_tokens)
        out["prefix"] = p
        if "error" in p:
            print(f"[{name}] shared prefix: FAILED: {p['error']}", flush=True)
        else:
            print(f"[{name}] shared prefix ({p['prompt_tokens'] or '?'} prompt tokens): cold TTFT "
                  f"{fmt(p['ttft_cold_s'], 0, 1e3)} ms, later p50 {fmt(p['ttft_warm_p50_s'], 0, 1e3)} ms, "
                  f"cold/warm {fmt(p['cold_over_warm'], 1)}x, cached_tokens {p['cached_tokens_probe']}", flush=True)
    if pid:
        out["rss_kib"] = read_rss_kib(pid)
        out["peak_rss_kib"] = read_rss_kib(pid, "VmHWM")
    return out


# ----------------------------------------------------------------------------------------------
# Report

def print_tables(runs, reference, a):
    print()
    print(f"Throughput: streaming {a.endpoint} completions, greedy, max_tokens {a.max_tokens}, "
          f"{a.threads} threads, prompts asking for long answers")
    print()
    print("| server | concurrency | requests | gen tokens (mean/req) | wall s | aggregate tok/s | TTFT p50 ms "
          "| TTFT p99 ms | per-stream tok/s p50 | errors |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        for r in run["throughput"]:
            src = "" if r["tokens_from_usage"] else "*"
            print(f"| {run['name']} | {r['concurrency']} | {r['requests']} | {r['generated_tokens']}{src} "
                  f"({r['mean_tokens_per_request']:.0f}) | {r['wall_s']:.2f} | {fmt(r['aggregate_tok_s'])} "
                  f"| {fmt(r['ttft_p50_s'], 0, 1e3)} | {fmt(r['ttft_p99_s'], 0, 1e3)} "
                  f"| {fmt(r['stream_tok_s_p50'])} | {r['errors']} |")
    if any(not r["tokens_from_usage"] for run in runs for r in run["throughput"]):
        print("\n\\* counted as SSE chunks with text (the server sent no usage in the stream)")
    if any(run["prefix"] for run in runs):
        print()
        print(f"Shared prefix: ~{a.prefix_tokens}-token common prefix (data/kjv.txt) + a different question, "
              f"one request at a time, max_tokens {a.prefix_max_tokens}")
        print()
        print("| server | prompt tokens | requests | cold TTFT ms | later TTFT p50 ms | cold / later | cached_tokens |")
        print("|---|---|---|---|---|---|---|")
        for run in runs:
            p = run["prefix"]
            if not p:
                continue
            if "error" in p:
                print(f"| {run['name']} | failed: {p['error'][:80]} | | | | | |")
                continue
            print(f"| {run['name']} | {p['prompt_tokens'] or '—'} | {p['requests']} | {fmt(p['ttft_cold_s'], 0, 1e3)} "
                  f"| {fmt(p['ttft_warm_p50_s'], 0, 1e3)} | {fmt(p['cold_over_warm'], 1)}x "
                  f"| {p['cached_tokens_probe'] if p['cached_tokens_probe'] is not None else '—'} |")
    ref = next((r for r in runs if r["name"] == reference), None)
    others = [r for r in runs if r is not ref]
    ratios = {}
    if ref and others:
        print()
        print(f"Ratios against {reference} (aggregate and per-stream tok/s: higher is better; TTFT: lower is better)")
        print()
        print("| server | concurrency | aggregate tok/s | TTFT p50 | TTFT p99 | per-stream tok/s |")
        print("|---|---|---|---|---|---|")
        for run in others:
            rr = ratios.setdefault(run["name"], {"throughput": [], "prefix": None})
            refrounds = {r["concurrency"]: r for r in ref["throughput"]}
            for r in run["throughput"]:
                q = refrounds.get(r["concurrency"])
                if not q:
                    continue
                x = {"concurrency": r["concurrency"],
                     "aggregate_tok_s": ratio(r["aggregate_tok_s"], q["aggregate_tok_s"]),
                     "ttft_p50": ratio(r["ttft_p50_s"], q["ttft_p50_s"]),
                     "ttft_p99": ratio(r["ttft_p99_s"], q["ttft_p99_s"]),
                     "stream_tok_s": ratio(r["stream_tok_s_p50"], q["stream_tok_s_p50"])}
                rr["throughput"].append(x)
                print(f"| {run['name']} | {r['concurrency']} | **{fmt_ratio(x['aggregate_tok_s'])}** "
                      f"| {fmt_ratio(x['ttft_p50'])} | {fmt_ratio(x['ttft_p99'])} | {fmt_ratio(x['stream_tok_s'])} |")
            p, q = run.get("prefix"), ref.get("prefix")
            if p and q and "error" not in p and "error" not in q:
                rr["prefix"] = {"ttft_cold": ratio(p["ttft_cold_s"], q["ttft_cold_s"]),
                                "ttft_warm_p50": ratio(p["ttft_warm_p50_s"], q["ttft_warm_p50_s"])}
        if any(v["prefix"] for v in ratios.values()):
            print()
            print("| server | shared prefix: cold TTFT | later TTFT p50 |")
            print("|---|---|---|")
            for name, v in ratios.items():
                if v["prefix"]:
                    print(f"| {name} | {fmt_ratio(v['prefix']['ttft_cold'])} | {fmt_ratio(v['prefix']['ttft_warm_p50'])} |")
    print(f"\n{a.threads} threads, --ctx {a.ctx}, --slots {a.slots}; {os.uname().nodename}, "
          f"{os.cpu_count()} CPUs; {time.strftime('%Y-%m-%d %H:%M')}")
    return ratios


# ----------------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--server", choices=["longctx", "llamacpp"], help="start one server of this kind")
    g.add_argument("--servers", help="comma-separated kinds, run one after another (e.g. longctx,llamacpp)")
    g.add_argument("--cmd", help="server command line to start; {port} is replaced (no shell)")
    g.add_argument("--url", help="an already running server")
    ap.add_argument("--name", help="name of the --cmd/--url server in the tables")
    ap.add_argument("--pid", type=int, help="PID of the --url server (RSS); default: the one listening on its port")
    ap.add_argument("--reference", default="llamacpp", help="server the ratios divide by (default llamacpp)")
    ap.add_argument("-m", "--model", default=os.path.join("models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096, help="context size passed to each server (default 4096)")
    ap.add_argument("--slots", type=int, default=16, help="longctx serve -np (default 16)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18480)
    ap.add_argument("--longctx-bin", default=os.path.join("build", "longctx"))
    ap.add_argument("--llamacpp-args", default="", help="extra arguments for llama_cpp.server (e.g. '--flash_attn true')")
    ap.add_argument("--llamacpp-extra-bufts", action="store_true",
                    help="keep llama.cpp's extra (AMX repack) buffers; they crash 0.3.36 on AMX CPUs")
    ap.add_argument("--extra-body", help="JSON object merged into every request (default for llamacpp: "
                                         '{"repeat_penalty": 1.0}, others: {})')
    ap.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    ap.add_argument("--concurrency", default="1,4,8,16")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--requests-per-client", type=int, default=1, help="requests per client thread per round")
    ap.add_argument("--min-requests", type=int, default=4, help="at least this many requests per round")
    ap.add_argument("--scenarios", default="throughput,prefix")
    ap.add_argument("--prefix-tokens", type=int, default=2000)
    ap.add_argument("--prefix-requests", type=int, default=8, help="shared-prefix requests (1 cold + N-1)")
    ap.add_argument("--prefix-max-tokens", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="smoke run: concurrency 1,4; max_tokens 32; 4 prefix requests")
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--request-timeout", type=float, default=600.0)
    ap.add_argument("--json", help="write all results to this file")
    a = ap.parse_args(argv)
    if a.quick:
        a.concurrency = "1,4"
        a.max_tokens = min(a.max_tokens, 32)
        a.prefix_requests = min(a.prefix_requests, 4)
        a.prefix_max_tokens = min(a.prefix_max_tokens, 8)
    a.concurrency = [int(x) for x in str(a.concurrency).split(",") if x]
    if not (a.server or a.servers or a.cmd or a.url):
        a.servers = "longctx,llamacpp"
    return a


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "llamacpp-server":
        return llamacpp_server_main(sys.argv[2:])
    a = parse_args()
    if a.json:
        a.json = os.path.abspath(a.json)
    for k in ("model", "longctx_bin"):  # paths given relative to the caller's directory, else to the repo
        if os.path.exists(getattr(a, k)):
            setattr(a, k, os.path.abspath(getattr(a, k)))
    os.chdir(ROOT)
    user_extra = json.loads(a.extra_body) if a.extra_body else None
    runs = []
    if a.url:
        name = a.name or "server"
        pid = a.pid or find_listening_pid(urllib.parse.urlparse(a.url).port or 80)
        c = Client(a.url)
        if not health_ok(c):
            raise SystemExit(f"serve_bench: {a.url} is not ready (/health)")
        runs.append(bench_server(name, a.url, a, pid, user_extra or {}))
    else:
        if a.cmd:
            plan = [(a.name or "server", [x.replace("{port}", str(a.port)) for x in shlex.split(a.cmd)], {})]
        else:
            kinds = [a.server] if a.server else [k.strip() for k in a.servers.split(",") if k.strip()]
            plan = [(k, server_command(k, a, a.port), default_extra_body(k)) for k in kinds]
        for name, cmd, extra in plan:
            srv = Server(cmd, a.host, a.port, name=name)
            try:
                ready_s = srv.wait_ready(a.ready_timeout)
                run = bench_server(name, srv.url, a, srv.pid, user_extra if user_extra is not None else extra)
                run["ready_s"] = ready_s
                run["command"] = cmd
                runs.append(run)
            finally:
                running = srv.proc.poll() is None
                rc = srv.stop()
                if running and rc not in (0, -signal.SIGTERM, None):
                    print(f"[{name}] exit status {rc} after SIGTERM; log tail:\n{srv.log_tail(10)}", flush=True)
    ratios = print_tables(runs, a.reference, a)
    if a.json:
        cfg = {k: v for k, v in vars(a).items()}
        with open(a.json, "w") as f:
            json.dump({"config": cfg, "runs": runs, "ratios": ratios, "host": os.uname().nodename,
                       "date": time.strftime("%Y-%m-%dT%H:%M:%S")}, f, indent=1)
        print(f"wrote {a.json}")
    failed = any(r["errors"] for run in runs for r in run["throughput"]) or \
        any(run["prefix"] and "error" in run["prefix"] for run in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
