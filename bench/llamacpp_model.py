#!/usr/bin/env python3
"""llama.cpp's side of `bench/model_bench.sh`: prefill and generation speed of a GGUF model
through pip's llama-cpp-python (the llama.cpp it builds from source), measured the way
llama-bench does: pp = one decode call over N random prompt tokens on an empty cache;
tg = N decode calls of one token each from an empty cache. Prints one JSON object.

  python3 bench/llamacpp_model.py -m MODEL [-p 512] [-n 128] [-r 3] [-t 2] [--fa auto|on|off]
"""
import argparse
import json
import random
import statistics
import sys
import time

import llama_cpp as L


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-m", "--model", required=True)
    ap.add_argument("-p", "--n-prompt", type=int, default=512)
    ap.add_argument("-n", "--n-gen", type=int, default=128)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--fa", choices=["auto", "on", "off"], default="auto")
    a = ap.parse_args()

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    model = L.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        sys.exit(f"llamacpp_model.py: cannot load {a.model}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    cp = L.llama_context_default_params()
    cp.n_ctx = max(a.n_prompt, a.n_gen) + 16
    cp.n_batch = max(a.n_prompt, 1)
    cp.n_ubatch = max(a.n_prompt, 1)
    cp.n_threads = a.threads
    cp.n_threads_batch = a.threads
    cp.flash_attn_type = {"auto": L.LLAMA_FLASH_ATTN_TYPE_AUTO, "on": L.LLAMA_FLASH_ATTN_TYPE_ENABLED,
                          "off": L.LLAMA_FLASH_ATTN_TYPE_DISABLED}[a.fa]
    ctx = L.llama_init_from_model(model, cp)
    if not ctx:
        sys.exit("llamacpp_model.py: cannot create a context")
    mem = L.llama_get_memory(ctx)
    rng = random.Random(1)

    def decode(tokens):
        arr = (L.llama_token * len(tokens))(*tokens)
        rc = L.llama_decode(ctx, L.llama_batch_get_one(arr, len(tokens)))
        if rc != 0:
            sys.exit(f"llamacpp_model.py: llama_decode returned {rc}")

    def run_pp():
        L.llama_memory_clear(mem, True)
        toks = [rng.randrange(n_vocab) for _ in range(a.n_prompt)]
        t0 = time.perf_counter()
        decode(toks)
        L.llama_synchronize(ctx)
        return a.n_prompt / (time.perf_counter() - t0)

    def run_tg():
        L.llama_memory_clear(mem, True)
        tok = rng.randrange(n_vocab)
        t0 = time.perf_counter()
        for _ in range(a.n_gen):
            decode([tok])
            L.llama_synchronize(ctx)
        return a.n_gen / (time.perf_counter() - t0)

    out = {"engine": "llama.cpp", "version": L.__version__, "threads": a.threads, "fa": a.fa, "tests": []}
    for name, n, fn in (("pp", a.n_prompt, run_pp), ("tg", a.n_gen, run_tg)):
        if n <= 0:
            continue
        fn()  # warm-up, as llama-bench does
        rates = [fn() for _ in range(a.repetitions)]
        out["tests"].append({"test": f"{name}{n}", "tokens_per_s": statistics.mean(rates),
                             "sd": statistics.stdev(rates) if len(rates) > 1 else 0.0})
    print(json.dumps(out))
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
