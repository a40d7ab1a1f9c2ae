#!/usr/bin/env python3
"""llama.cpp's side of `bench/model_bench.sh`: prefill and generation speed of a GGUF model
through pip's llama-cpp-python (the llama.cpp it builds from source), measured the way
llama-bench does: pp = one decode call over N random prompt tokens on an empty cache;
tg = N decode calls of one token each from an empty cache. With --depth D (llama-bench's -d)
the cache first holds D random tokens (decoded in batches of --ubatch) and each run starts
there (the tokens past D are removed between runs). Prints one JSON object, with the peak
resident memory of the process.

  python3 bench/llamacpp_model.py -m MODEL [-p 512] [-n 128] [-r 3] [-t 2] [--fa auto|on|off]
                                  [--depth D] [--ubatch 512] [--cache-type f16|q8_0|f32]
"""
import argparse
import json
import random
import resource
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
    ap.add_argument("-d", "--depth", type=int, default=0)
    ap.add_argument("--ubatch", type=int, default=512)
    ap.add_argument("--cache-type", choices=["f16", "q8_0", "f32"], default="f16")
    ap.add_argument("--extra-bufts", action="store_true",
                    help="keep llama.cpp's extra CPU weight buffers (its AMX repacking); off by default: "
                         "llama-cpp-python 0.3.36 crashes with them on AMX CPUs (SIGSEGV on the first decode)")
    a = ap.parse_args()

    L.llama_backend_init()
    mp = L.llama_model_default_params()
    if not a.extra_bufts:
        mp.use_extra_bufts = False
    model = L.llama_model_load_from_file(a.model.encode(), mp)
    if not model:
        sys.exit(f"llamacpp_model.py: cannot load {a.model}")
    vocab = L.llama_model_get_vocab(model)
    n_vocab = L.llama_vocab_n_tokens(vocab)
    cp = L.llama_context_default_params()
    cp.n_ctx = a.depth + max(a.n_prompt, a.n_gen) + 16
    cp.n_batch = max(a.n_prompt, a.ubatch, 1)
    cp.n_ubatch = max(min(a.n_prompt, a.ubatch) if a.n_prompt else a.ubatch, 1)
    kv_type = {"f16": 1, "q8_0": 8, "f32": 0}[a.cache_type]  # ggml type ids
    cp.type_k = kv_type
    cp.type_v = kv_type
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

    filled = [False]

    def to_depth():
        # Back to exactly `depth` cached tokens: filled once, then what a run added is removed.
        if a.depth == 0:
            L.llama_memory_clear(mem, True)
            return
        if not filled[0]:
            L.llama_memory_clear(mem, True)
            toks = [rng.randrange(n_vocab) for _ in range(a.depth)]
            t0 = time.perf_counter()
            for i in range(0, a.depth, a.ubatch):
                decode(toks[i:i + a.ubatch])
            L.llama_synchronize(ctx)
            print(f"llama.cpp: filled the cache to depth {a.depth} in {time.perf_counter() - t0:.1f} s",
                  file=sys.stderr)
            filled[0] = True
        else:
            L.llama_memory_seq_rm(mem, 0, a.depth, -1)

    def run_pp():
        to_depth()
        toks = [rng.randrange(n_vocab) for _ in range(a.n_prompt)]
        t0 = time.perf_counter()
        decode(toks)
        L.llama_synchronize(ctx)
        return a.n_prompt / (time.perf_counter() - t0)

    def run_tg():
        to_depth()
        tok = rng.randrange(n_vocab)
        t0 = time.perf_counter()
        for _ in range(a.n_gen):
            decode([tok])
            L.llama_synchronize(ctx)
        return a.n_gen / (time.perf_counter() - t0)

    out = {"engine": "llama.cpp", "version": L.__version__, "threads": a.threads, "fa": a.fa, "depth": a.depth,
           "cache_type": a.cache_type, "tests": []}
    for name, n, fn in (("pp", a.n_prompt, run_pp), ("tg", a.n_gen, run_tg)):
        if n <= 0:
            continue
        fn()  # warm-up, as llama-bench does
        rates = [fn() for _ in range(a.repetitions)]
        out["tests"].append({"test": f"{name}{n}" + (f" @ d{a.depth}" if a.depth else ""),
                             "tokens_per_s": statistics.mean(rates),
                             "sd": statistics.stdev(rates) if len(rates) > 1 else 0.0})
    out["peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps(out))
    L.llama_free(ctx)
    L.llama_model_free(model)


if __name__ == "__main__":
    main()
