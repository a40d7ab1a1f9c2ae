#!/usr/bin/env python3
"""longctx against llama.cpp (pip's llama-cpp-python, built from source by
scripts/setup_llamacpp.sh), run by CTest:

  compare_logits.py LONGCTX_BINARY SOURCE_DIR

1. A checkpoint trained by longctx (2 layers, GQA) and one with MQA and NTK RoPE scaling,
   exported with `longctx export` as general.architecture = llama: llama.cpp loads them, gives the
   same logits for the same tokens (within 1e-3 of each row's range; a prefill pass in both), and
   tokenizes an ASCII sentence to the same ids.
2. The export quantized to Q8_0 by `longctx quantize`, decoded one token at a time by both
   engines (both round activations to 8 bits): within 1e-2 of the row range.
3. SmolLM2-135M-Instruct Q4_1 decoded one token at a time with the weights kept quantized: no
   further from the fp32 forward (longctx --dequantize, itself checked against a float64 NumPy
   reference in tests/model/smollm2_test.cc) than llama.cpp's decode of the same file is, in mean
   KL divergence (at most 1.25x llama.cpp's) and top-1 agreement (at most 5 points lower).
4. SmolLM2 expanded by `longctx expand --every 10` (33 layers, the 3 added in F32 and in Q8_0):
   llama.cpp loads it and gives the logits it gives the original (within 1e-5 of the row range:
   the added layers add exact zeros), and so does longctx, quantized and in fp32 (within 1e-6).
5. That expansion fine-tuned for a few steps with `train --train-only new` (the Q4_1 layers frozen
   and read in place), exported with `export --keep-types`: llama.cpp's decode of the export is
   no further from longctx's decode of the checkpoint than the two engines' decodes of the
   original SmolLM2 are from each other (1.5x), and the logits moved away from the original's
   (the added layers trained).
6. A LoRA adapter trained by `train --lora` on SmolLM2 Q4_1 (base read in place): llama.cpp loads
   it (`lora_path`), and its decode with the adapter is no further from longctx's decode with
   `--lora` than the two engines' decodes of the plain base are (1.5x), while the adapter moves
   the logits; `merge-lora` gives the fp32 logits of base + adapter (within 1e-5 of the row range).
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

try:
    import llama_cpp
except ImportError:
    sys.exit("FAIL: llama-cpp-python is not installed: run `bash scripts/setup_llamacpp.sh` (scripts/test.sh does)")

BIN, SRC = sys.argv[1], sys.argv[2]
SMOLLM2 = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
SENTENCE = "In the beginning God created the heaven and the earth. And the earth was without form."
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(*args):
    r = subprocess.run([BIN, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: longctx {' '.join(args)}: {r.stderr.strip()}")
    return r.stdout


def our_logits(model, tokens, out, decode=False, dequantize=False, extra=()):
    flags = ["--decode"] if decode else []
    flags += ["--dequantize"] if dequantize else []
    flags += list(extra)
    run("logits", "-m", model, "--tokens", ",".join(map(str, tokens)), "-o", out, "-t", "2", *flags)
    return np.load(out).astype(np.float64)


def llama_logits(model, tokens, batch, lora=None):
    kw = {"lora_path": lora} if lora else {}
    llm = llama_cpp.Llama(model, n_ctx=max(64, len(tokens)), n_threads=2, n_batch=batch, n_ubatch=batch,
                          logits_all=True, verbose=False, **kw)
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    ids = llm.tokenize(SENTENCE.encode(), add_bos=False, special=False)
    del llm
    return out, ids


def worst_rel(a, ref):
    return float((np.abs(a - ref).max(axis=1) / (ref.max(axis=1) - ref.min(axis=1))).max())


def log_softmax(x):
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def mean_kl(ref, q):
    p, lq = log_softmax(ref), log_softmax(q)
    return float((np.exp(p) * (p - lq)).sum(axis=1).mean())


def corpus(path):
    src = os.environ.get("LONGCTX_CORPUS", "")
    if src and os.path.exists(src):
        with open(src, "rb") as f:
            data = f.read(400_000)
    else:
        words = "the of and to in that he shall unto for his a lord they be is him not them it with all".split()
        rng = np.random.default_rng(1)
        data = "\n".join(" ".join(rng.choice(words, 12)) + "." for _ in range(20000)).encode()
    with open(path, "wb") as f:
        f.write(data)


def exported_checkpoints(tmp):
    text = os.path.join(tmp, "corpus.txt")
    corpus(text)
    for name, extra in (("gqa", ["--kv-heads", "2"]), ("mqa-ntk", ["--kv-heads", "1", "--rope-scaling", "ntk:2"])):
        ck, ll = os.path.join(tmp, name + ".gguf"), os.path.join(tmp, name + "-llama.gguf")
        run("train", "--preset", "tiny", "--layers", "2", "--vocab-size", "512", "--data", text, "--ctx", "64",
            "--batch", "4", "--steps", "30", "--eval-every", "0", "-t", "2", "-o", ck, *extra)
        run("export", ck, ll)
        yield name, ck, ll


def main():
    with tempfile.TemporaryDirectory() as tmp:
        for name, ck, ll in exported_checkpoints(tmp):
            tokens = json.loads(run("logits", "-m", ck, "-p", SENTENCE, "-o", os.path.join(tmp, "p.npy")))["tokens"]
            ours = our_logits(ll, tokens, os.path.join(tmp, "a.npy"))
            ref, ids = llama_logits(ll, tokens, len(tokens))
            e = worst_rel(ours, ref)
            check(e <= 1e-3, f"{name}: exported checkpoint, logits vs llama.cpp: worst {e:.2e} of the row range (<= 1e-3)")
            check(ids == tokens, f"{name}: llama.cpp tokenizes the sentence to longctx's ids")
            q8 = os.path.join(tmp, name + "-q8_0.gguf")
            run("quantize", ll, q8, "q8_0")
            ours = our_logits(q8, tokens, os.path.join(tmp, "d.npy"), decode=True)
            ref, _ = llama_logits(q8, tokens, 1)
            e = worst_rel(ours, ref)
            check(e <= 1e-2, f"{name}: Q8_0 decode vs llama.cpp decode: worst {e:.2e} of the row range (<= 1e-2)")

        if not os.path.exists(SMOLLM2):
            sys.exit(f"FAIL: {SMOLLM2} is missing: run `bash scripts/fetch_model.sh`")
        tokens = json.loads(run("logits", "-m", SMOLLM2, "-p", SENTENCE, "-o", os.path.join(tmp, "s.npy")))["tokens"]
        fp32 = our_logits(SMOLLM2, tokens, os.path.join(tmp, "f.npy"), dequantize=True)
        ours = our_logits(SMOLLM2, tokens, os.path.join(tmp, "q.npy"), decode=True)
        base_decode = ours
        ref, _ = llama_logits(SMOLLM2, tokens, 1)
        k_ours, k_ref = mean_kl(fp32, ours), mean_kl(fp32, ref)
        t_ours = float((ours.argmax(1) == fp32.argmax(1)).mean())
        t_ref = float((ref.argmax(1) == fp32.argmax(1)).mean())
        check(k_ours <= 1.25 * k_ref,
              f"SmolLM2 Q4_1 decode: mean KL to fp32 {k_ours:.4f}, llama.cpp's {k_ref:.4f} (<= 1.25x)")
        check(t_ours >= t_ref - 0.05, f"SmolLM2 Q4_1 decode: top-1 agreement with fp32 {t_ours:.3f}, llama.cpp's {t_ref:.3f}")

        # One token at a time in llama.cpp: its batched Q4_1 path crashes on AMX CPUs in
        # llama-cpp-python 0.3.36 (its extra weight buffers, which the Llama class keeps on).
        base_ref = ref
        base_ours = our_logits(SMOLLM2, tokens, os.path.join(tmp, "b.npy"))
        for new_type in ("f32", "q8_0"):
            ex = os.path.join(tmp, f"smollm2-expanded-{new_type}.gguf")
            run("expand", "-m", SMOLLM2, "-o", ex, "--every", "10", "--type", new_type)
            ref, _ = llama_logits(ex, tokens, 1)
            e = worst_rel(ref, base_ref)
            check(e <= 1e-5, f"SmolLM2 expanded ({new_type} added layers) in llama.cpp vs the original in llama.cpp: "
                             f"worst {e:.2e} of the row range (<= 1e-5)")
            e = worst_rel(our_logits(ex, tokens, os.path.join(tmp, "e.npy")), base_ours)
            check(e <= 1e-5, f"SmolLM2 expanded ({new_type} added layers) in longctx vs the original: worst {e:.2e}")
            d = float(np.abs(our_logits(ex, tokens, os.path.join(tmp, "g.npy"), dequantize=True) - fp32).max())
            check(d <= 1e-6, f"SmolLM2 expanded ({new_type} added layers), fp32 forward: logits within {d:.1e} (<= 1e-6)")

        text = os.path.join(tmp, "corpus.txt")
        ex, ft, ftl = (os.path.join(tmp, n) for n in ("smollm2-expanded-f32.gguf", "ft.gguf", "ft-llama.gguf"))
        run("train", "--data", text, "--init", ex, "--train-only", "new", "--steps", "4", "--ctx", "64", "--batch", "2",
            "--lr", "2e-3", "--min-lr", "1e-4", "--warmup", "1", "--eval-every", "0", "-t", "2", "-o", ft)
        run("export", ft, ftl, "--keep-types")
        ours = our_logits(ft, tokens, os.path.join(tmp, "h.npy"), decode=True)
        ref, _ = llama_logits(ftl, tokens, 1)
        e, e0 = worst_rel(ours, ref), worst_rel(base_decode, base_ref)
        check(e <= 1.5 * e0, f"SmolLM2 expanded + fine-tuned (new layers only), exported --keep-types: llama.cpp decode "
                             f"vs longctx decode: worst {e:.2e} of the row range (the original's: {e0:.2e}; <= 1.5x)")
        moved = worst_rel(ours, base_ours)
        check(moved > 1e-2, f"the fine-tuned layers changed the logits: {moved:.2e} of the row range from the original")

        ad, merged = os.path.join(tmp, "adapter.gguf"), os.path.join(tmp, "merged.gguf")
        run("train", "--data", text, "--init", SMOLLM2, "--lora", "r=8,alpha=16,targets=q,k,v,o,gate,up,down",
            "--steps", "4", "--ctx", "64", "--batch", "2", "--lr", "2e-3", "--min-lr", "1e-4", "--warmup", "1",
            "--eval-every", "0", "-t", "2", "-o", ad)
        ours = our_logits(SMOLLM2, tokens, os.path.join(tmp, "l.npy"), decode=True, extra=["--lora", ad])
        ref = llama_logits(SMOLLM2, tokens, 1, lora=ad)[0]
        e, moved = worst_rel(ours, ref), worst_rel(ref, base_ref)
        check(e <= 1.5 * e0, f"LoRA adapter from longctx in llama.cpp: decode vs longctx --lora decode: worst {e:.2e} of "
                             f"the row range (the plain base's: {e0:.2e}; <= 1.5x)")
        check(moved > 1e-2, f"the adapter moves llama.cpp's logits: {moved:.2e} of the row range")
        run("merge-lora", "-m", SMOLLM2, "--lora", ad, "-o", merged)
        want = our_logits(SMOLLM2, tokens, os.path.join(tmp, "w.npy"), dequantize=True, extra=["--lora", ad])
        got = our_logits(merged, tokens, os.path.join(tmp, "x.npy"), dequantize=True)
        e = worst_rel(got, want)
        check(e <= 1e-5, f"merge-lora: the merged model's fp32 logits vs base + adapter: worst {e:.2e} of the row range")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all llama.cpp comparisons passed")


if __name__ == "__main__":
    main()
