#!/usr/bin/env python3
"""Soak test for an OpenAI-compatible server (`longctx serve`; developed against llama-cpp-python's
server): many concurrent streaming requests, some of them abandoned mid-stream, and checks that
nothing is lost or corrupted and that memory stays flat. Standard library only; shares its HTTP/SSE
client and server starting with bench/serve_bench.py.

  1. starts the server (--server longctx|llamacpp, or --cmd) and waits for /health, or uses --url;
  2. reference: each of a small set of distinct prompts once, one request at a time, streaming, greedy
     (temperature 0, max_tokens --max-tokens); a non-streaming request per prompt must give the same
     text;
  3. soak: --requests R (default 1000) from --clients C (default 16) threads; a --disconnect-frac share
     (default 10%) close the socket after --disconnect-after chunks with text (default 3); a
     --nonstream-frac share (default 10%) are non-streaming; the rest stream to the end. Every response
     that was not abandoned must equal its prompt's reference exactly (text and finish_reason), must
     end with `data: [DONE]` when streamed, and none may fail;
  4. the server's resident memory (VmRSS of /proc/PID/status; PID of the server started here, --pid,
     or the process listening on the URL's port) is sampled every second: RSS once --warmup-frac of
     the soak is done against RSS at the end must stay within --rss-tolerance (default 10%);
  5. afterwards each prompt once more, alone (must still equal the reference), GET /health must answer
     200, GET /metrics must answer 200 with Prometheus text, and the server must still be running.
Exits 0 when every check passed, 1 otherwise. Prints a progress line every --progress-s seconds.

  python3 bench/serve_soak.py --server longctx [-t 2] [--slots 16] [--requests 1000] [--clients 16]
  python3 bench/serve_soak.py --url http://127.0.0.1:8080 [--pid PID] [--requests 200]
  python3 bench/serve_soak.py --server llamacpp --requests 60 --clients 8     # the reference server

llama-cpp-python's server has no /health and no /metrics: with --server llamacpp (or
--allow-missing-health-metrics) a 404 there is reported and not counted as a failure, and readiness
falls back to GET /v1/models. See bench/serve_bench.py for how it is started (use_extra_bufts off,
--interrupt_requests false, requests with "repeat_penalty": 1.0).
"""
import argparse
import json
import os
import random
import re
import shlex
import signal
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_bench as sb  # noqa: E402

SOAK_PROMPTS = [
    "Write a short story about a cat who lives in a lighthouse.",
    "Explain how rain forms, in a few sentences.",
    "List five fruits and describe the taste of each one.",
    "What are the benefits of regular exercise?",
    "Écris une phrase en français sur le café du matin, puis traduis-la en anglais.",
    "Write a haiku about winter, then explain it.",
]

METRIC_LINE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[^}]*\})?\s+([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|[-+]?Inf|NaN)"
                         r"(\s+-?\d+)?$")


def check_metrics(text):
    """(ok, detail): Prometheus text exposition: every non-comment line `name{labels} value [ts]`."""
    samples, bad = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        (samples if METRIC_LINE.match(line) else bad).append(line)
    if bad:
        return False, f"{len(bad)} lines are not Prometheus samples, e.g. {bad[0][:120]!r}"
    if not samples:
        return False, "no samples"
    return True, f"{len(samples)} samples, e.g. " + "; ".join(s[:80] for s in samples[:4])


class RssSampler(threading.Thread):
    def __init__(self, pid, period=1.0):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []  # (time, kib, completed requests)
        self.completed = 0
        self.stop_ev = threading.Event()

    def run(self):
        while not self.stop_ev.is_set():
            kib = sb.read_rss_kib(self.pid)
            if kib is not None:
                self.samples.append((time.time(), kib, self.completed))
            self.stop_ev.wait(self.period)

    def now(self):
        return sb.read_rss_kib(self.pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--url", help="a running server")
    g.add_argument("--server", choices=["longctx", "llamacpp"], help="start a server of this kind")
    g.add_argument("--cmd", help="server command line to start; {port} is replaced (no shell)")
    ap.add_argument("--pid", type=int, help="PID of the --url server for RSS (default: the one listening on its port)")
    ap.add_argument("-m", "--model", default=os.path.join("models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=18490)
    ap.add_argument("--longctx-bin", default=os.path.join("build", "longctx"))
    ap.add_argument("--llamacpp-args", default="")
    ap.add_argument("--llamacpp-extra-bufts", action="store_true")
    ap.add_argument("--extra-body", help="JSON object merged into every request")
    ap.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--disconnect-frac", type=float, default=0.10)
    ap.add_argument("--disconnect-after", type=int, default=3, help="chunks with text read before closing")
    ap.add_argument("--nonstream-frac", type=float, default=0.10)
    ap.add_argument("--prompts", type=int, default=len(SOAK_PROMPTS), help="distinct prompts (at most %d)"
                    % len(SOAK_PROMPTS))
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup-frac", type=float, default=0.10, help="share of the soak before the warm RSS")
    ap.add_argument("--rss-tolerance", type=float, default=0.10)
    ap.add_argument("--progress-s", type=float, default=10.0)
    ap.add_argument("--allow-missing-health-metrics", action="store_true",
                    help="a 404 on /health or /metrics is not a failure (default with --server llamacpp)")
    ap.add_argument("--request-timeout", type=float, default=300.0)
    ap.add_argument("--ready-timeout", type=float, default=300.0)
    ap.add_argument("--json", help="write the summary to this file")
    a = ap.parse_args()
    if a.json:
        a.json = os.path.abspath(a.json)
    for k in ("model", "longctx_bin"):
        if os.path.exists(getattr(a, k)):
            setattr(a, k, os.path.abspath(getattr(a, k)))
    os.chdir(sb.ROOT)

    failures = []

    def fail(msg):
        failures.append(msg)
        print(f"FAIL {msg}", flush=True)

    srv = None
    if a.url:
        url = a.url.rstrip("/")
        pid = a.pid or sb.find_listening_pid(urllib.parse.urlparse(url).port or 80)
        extra = {}
        lenient = a.allow_missing_health_metrics
    else:
        if a.cmd:
            cmd, name, extra = [x.replace("{port}", str(a.port)) for x in shlex.split(a.cmd)], "server", {}
        else:
            cmd, name, extra = sb.server_command(a.server, a, a.port), a.server, sb.default_extra_body(a.server)
        lenient = a.allow_missing_health_metrics or a.server == "llamacpp"
        srv = sb.Server(cmd, a.host, a.port, name=name)
        srv.wait_ready(a.ready_timeout)
        url, pid = srv.url, srv.pid
    if a.extra_body:
        extra = json.loads(a.extra_body)
    try:
        rc = soak(a, url, pid, extra, lenient, fail, srv)
    finally:
        if srv:
            running = srv.proc.poll() is None
            src = srv.stop()
            if running and src not in (0, -signal.SIGTERM):
                print(f"note: server exit status {src} after SIGTERM; log {srv.log_path}", flush=True)
    print()
    if failures:
        print(f"serve_soak: FAILED ({len(failures)} checks):")
        for f in failures:
            print(f"  - {f}")
        return 1
    print("serve_soak: all checks passed")
    return rc


def soak(a, url, pid, extra, lenient, fail, srv):
    client = sb.Client(url, endpoint=a.endpoint, extra_body=extra, timeout=a.request_timeout)
    client.model = sb.model_id(client)
    prompts = SOAK_PROMPTS[:max(1, min(a.prompts, len(SOAK_PROMPTS)))]
    print(f"soak: {url} (pid {pid or 'unknown'}), model {client.model}, {len(prompts)} prompts, "
          f"max_tokens {a.max_tokens}, extra body {extra}", flush=True)

    def body(i, stream=True):
        return client.body(prompt=prompts[i], max_tokens=a.max_tokens, stream=stream)

    # 1. references, one request at a time
    refs = []
    for i in range(len(prompts)):
        r = client.stream(body(i))
        if not r.ok:
            fail(f"reference for prompt {i} failed: {r.error}")
            return 1
        refs.append((r.text, r.finish_reason))
        ns = client.complete(body(i, stream=False))
        if not ns.ok:
            fail(f"non-streaming reference for prompt {i} failed: {ns.error}")
        elif (ns.text, ns.finish_reason) != (r.text, r.finish_reason):
            fail(f"prompt {i}: non-streaming response differs from the streamed one: "
                 f"{ns.text[:60]!r}/{ns.finish_reason} vs {r.text[:60]!r}/{r.finish_reason}")
        print(f"reference {i}: {r.tokens} tokens, finish {r.finish_reason}: {r.text[:70]!r}...", flush=True)
        if r.n_chunks <= a.disconnect_after:
            print(f"note: prompt {i} streams only {r.n_chunks} chunks; its 'disconnects' will read the whole response",
                  flush=True)

    # 2. the soak
    rng = random.Random(a.seed)
    n = a.requests
    kinds = ["stream"] * n
    idx = list(range(n))
    rng.shuffle(idx)
    n_disc = round(n * a.disconnect_frac)
    n_ns = round(n * a.nonstream_frac)
    for j in idx[:n_disc]:
        kinds[j] = "disconnect"
    for j in idx[n_disc:n_disc + n_ns]:
        kinds[j] = "nonstream"
    plan = [(j, rng.randrange(len(prompts)), kinds[j]) for j in range(n)]

    sampler = None
    if pid:
        sampler = RssSampler(pid)
        sampler.start()
    else:
        print("note: server PID unknown: no RSS check (give --pid)", flush=True)
    lock = threading.Lock()
    stats = {"done": 0, "ok": 0, "disconnected": 0, "errors": 0, "mismatch": 0, "tokens": 0}
    problems = []
    nxt = [0]
    warm_at = max(int(n * a.warmup_frac), min(n, 2 * a.clients))
    warm_rss = [None]

    def worker():
        while True:
            with lock:
                if nxt[0] >= n:
                    return
                j, p, kind = plan[nxt[0]]
                nxt[0] += 1
            if kind == "nonstream":
                r = client.complete(body(p, stream=False))
            else:
                r = client.stream(body(p), disconnect_after=a.disconnect_after if kind == "disconnect" else None)
            with lock:
                stats["done"] += 1
                if sampler:
                    sampler.completed = stats["done"]
                    if stats["done"] == warm_at:
                        warm_rss[0] = sampler.now()
                if not r.ok:
                    stats["errors"] += 1
                    problems.append(f"request {j} ({kind}, prompt {p}) failed: {r.error}")
                elif r.disconnected:
                    stats["disconnected"] += 1
                elif (r.text, r.finish_reason) != refs[p]:
                    stats["mismatch"] += 1
                    k = next((i for i, (x, y) in enumerate(zip(r.text, refs[p][0])) if x != y),
                             min(len(r.text), len(refs[p][0])))
                    problems.append(f"request {j} ({kind}, prompt {p}) differs from the reference at char {k}: "
                                    f"{r.text[k:k + 40]!r} (finish {r.finish_reason}) vs "
                                    f"{refs[p][0][k:k + 40]!r} (finish {refs[p][1]})")
                else:
                    stats["ok"] += 1
                    stats["tokens"] += r.tokens if kind != "nonstream" else ((r.usage or {}).get("completion_tokens") or 0)

    t0 = time.time()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.clients)]
    for t in threads:
        t.start()
    last = t0
    while any(t.is_alive() for t in threads):
        time.sleep(0.5)
        if time.time() - last >= a.progress_s:
            last = time.time()
            el = last - t0
            with lock:
                s = dict(stats)
            rss = sampler.now() if sampler else None
            print(f"soak: {s['done']}/{n} done in {el:.0f} s ({s['done'] / el:.1f} req/s): {s['ok']} equal, "
                  f"{s['disconnected']} disconnected, {s['errors']} failed, {s['mismatch']} differ"
                  + (f", RSS {rss / 1024:.0f} MiB" if rss else ""), flush=True)
        if srv and srv.proc.poll() is not None:
            fail(f"the server exited with {srv.proc.returncode} during the soak; log tail:\n{srv.log_tail(15)}")
            break
    wall = time.time() - t0
    if sampler:
        time.sleep(1.5)  # one more sample after the last request
        sampler.stop_ev.set()
        sampler.join()
    print(f"soak: {stats['done']}/{n} requests in {wall:.1f} s ({stats['done'] / wall:.1f} req/s, "
          f"{stats['tokens'] / wall:.1f} tok/s over complete responses): {stats['ok']} equal to the reference, "
          f"{stats['disconnected']} disconnected on purpose, {stats['errors']} failed, {stats['mismatch']} differ",
          flush=True)
    for pmsg in problems[:10]:
        print("  " + pmsg)
    if len(problems) > 10:
        print(f"  ... and {len(problems) - 10} more")
    if stats["done"] != n:
        fail(f"only {stats['done']} of {n} requests completed")
    if stats["errors"]:
        fail(f"{stats['errors']} requests failed (lost)")
    if stats["mismatch"]:
        fail(f"{stats['mismatch']} responses differ from their reference (corrupted)")
    if stats["ok"] + stats["disconnected"] + stats["errors"] + stats["mismatch"] != stats["done"]:
        fail("request accounting does not add up")

    # 3. memory
    summary = {"requests": n, "clients": a.clients, "wall_s": wall, **stats}
    if sampler and sampler.samples:
        end_rss = sampler.samples[-1][1]
        warm = warm_rss[0] or next((k for _, k, c in sampler.samples if c >= warm_at), sampler.samples[0][1])
        peak = max([k for _, k, _ in sampler.samples] + [warm])
        growth = (end_rss - warm) / warm if warm else 0.0
        print(f"RSS: {warm / 1024:.1f} MiB after warm-up ({warm_at} requests), {end_rss / 1024:.1f} MiB at the end, "
              f"peak {peak / 1024:.1f} MiB, {len(sampler.samples)} samples: {growth * 100:+.1f}% "
              f"({'flat' if growth <= a.rss_tolerance else 'GROWING'}, tolerance {a.rss_tolerance * 100:.0f}%)",
              flush=True)
        summary.update(rss_warm_kib=warm, rss_end_kib=end_rss, rss_peak_kib=peak, rss_growth=growth,
                       rss_samples=[(round(t - t0, 1), k, c) for t, k, c in sampler.samples])
        if growth > a.rss_tolerance:
            fail(f"RSS grew {growth * 100:.1f}% from warm-up to the end (tolerance {a.rss_tolerance * 100:.0f}%)")

    # 4. after the soak: alone again, health, metrics, still alive
    for i in range(len(prompts)):
        r = client.stream(body(i))
        if not r.ok:
            fail(f"after the soak, prompt {i} failed: {r.error}")
        elif (r.text, r.finish_reason) != refs[i]:
            fail(f"after the soak, prompt {i} differs from its reference: {r.text[:60]!r}")
    print(f"after the soak: {len(prompts)} prompts again, one at a time", flush=True)
    try:
        st, _ = client.get("/health", timeout=10)
        if st == 200:
            print("GET /health: 200", flush=True)
        elif st == 404 and lenient:
            st2, _ = client.get("/v1/models", timeout=10)
            print(f"GET /health: 404 (this server has none; allowed), GET /v1/models: {st2}", flush=True)
            if st2 != 200:
                fail(f"GET /v1/models answered {st2}")
        else:
            fail(f"GET /health answered {st}")
        summary["health_status"] = st
    except OSError as e:
        fail(f"GET /health: {e}")
    try:
        st, txt = client.get("/metrics", timeout=10)
        summary["metrics_status"] = st
        if st == 200:
            ok, detail = check_metrics(txt)
            print(f"GET /metrics: 200, {detail}", flush=True)
            if not ok:
                fail(f"/metrics is not Prometheus text: {detail}")
        elif st == 404 and lenient:
            print("GET /metrics: 404 (this server has none; allowed)", flush=True)
        else:
            fail(f"GET /metrics answered {st}")
    except OSError as e:
        fail(f"GET /metrics: {e}")
    if pid and not os.path.exists(f"/proc/{pid}"):
        fail(f"the server (pid {pid}) is gone")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
