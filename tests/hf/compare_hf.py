#!/usr/bin/env python3
"""Hugging Face models in longctx against transformers, and their GGUF exports against llama.cpp.

  python3 tests/hf/compare_hf.py BUILD/longctx SOURCE_DIR

tests/hf/make_hf_models.py (run here under Debian's python3 + torch with transformers from
scripts/setup_hf.sh) writes small random GPT-2, Llama (GQA; MQA with tied output and linear RoPE
scaling) and Mistral (sliding window) models as save_pretrained does, in F32, F16 (one sharded)
and BF16, with transformers' fp32 logits over the stored weights. Then, for each:
  - longctx tokenizes the text as transformers' tokenizer does (tokenizer.json);
  - longctx's logits (weights read in place, and --dequantize, and token by token through the
    KV cache) equal transformers' within 1e-4 of each row's range;
  - GPT-2 and Llama are exported with `longctx export --arch gpt2|llama`; llama.cpp (pip's
    llama-cpp-python, f32 KV cache) runs the GGUF to transformers' logits within 1e-4 (llama) or
    5e-4 (gpt2: llama.cpp's GELU goes through fp16), so the export is the
    standard layout (GPT-2's fused QKV, Llama's Q/K row order); longctx runs the GGUF (QKV split
    by rows in place) within 1e-4; on their Q8_0 versions longctx's decode is as close to the fp32
    reference as llama.cpp's (within 1.25x of its error).
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

# llama.cpp's extra CPU weight buffers (AMX int8 repacking, on CPUs that have AMX) crash on the Q8_0
# matrices of these tiny models (n_embd 64) in 0.3.36. This test compares numbers, not speed: the
# models load with use_extra_bufts off, llama.cpp's plain CPU path (the same arithmetic, no repack).
_default_model_params = llama_cpp.llama_cpp.llama_model_default_params


def _model_params_without_extra_buffers():
    p = _default_model_params()
    p.use_extra_bufts = False
    return p


llama_cpp.llama_cpp.llama_model_default_params = _model_params_without_extra_buffers

BIN, SRC = sys.argv[1], sys.argv[2]
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


def our_logits(model, tokens, out, *flags):
    run("logits", "-m", model, "--tokens", ",".join(map(str, tokens)), "-o", out, "-t", "2", *flags)
    return np.load(out).astype(np.float64)


def llama_logits(model, tokens):
    # An f32 KV cache: llama.cpp's default f16 one would add its own rounding to the comparison.
    llm = llama_cpp.Llama(model, n_ctx=64, n_threads=2, n_batch=64, n_ubatch=64, logits_all=True, verbose=False,
                          type_k=0, type_v=0)
    llm.eval(tokens)
    out = np.array(llm.scores[: len(tokens)], dtype=np.float64)
    del llm
    return out


def worst_rel(a, ref):
    return float((np.abs(a - ref).max(axis=1) / (ref.max(axis=1) - ref.min(axis=1))).max())


def bad_inputs(tmp, good):
    """Damaged copies of a good model directory: one error line, non-zero exit, no crash."""
    import shutil

    def case(what, damage):
        d = os.path.join(tmp, "bad_" + what)
        shutil.copytree(good, d)
        damage(d)
        r = subprocess.run([BIN, "logits", "-m", d, "--tokens", "1,2", "-o", os.path.join(d, "x.npy")],
                           capture_output=True, text=True)
        lines = [l for l in r.stderr.splitlines() if l.startswith("longctx: error:")]
        ok = 0 < r.returncode < 128 and len(lines) == 1 and not os.path.exists(os.path.join(d, "x.npy"))
        check(ok, f"bad input {what}: rc {r.returncode}: {lines[0] if lines else r.stderr.strip()[-200:]}")

    def edit_config(**kv):
        def f(d):
            with open(os.path.join(d, "config.json")) as fh:
                c = json.load(fh)
            c.update(kv)
            with open(os.path.join(d, "config.json"), "w") as fh:
                json.dump(c, fh)
        return f

    def write(name, data):
        return lambda d: open(os.path.join(d, name), "wb").write(data)

    def truncate(d):
        p = os.path.join(d, "model.safetensors")
        data = open(p, "rb").read()
        open(p, "wb").write(data[: len(data) // 2])

    case("no-config", lambda d: os.remove(os.path.join(d, "config.json")))
    case("config-not-json", write("config.json", b"{not json"))
    case("model-type", edit_config(model_type="bert"))
    case("hidden-size-string", edit_config(n_embd="64"))
    case("activation", edit_config(activation_function="relu"))
    case("wrong-layer-count", edit_config(n_layer=3))
    case("wrong-vocab", edit_config(vocab_size=500))
    case("no-tokenizer", lambda d: os.remove(os.path.join(d, "tokenizer.json")))
    case("tokenizer-not-json", write("tokenizer.json", b"[1, 2"))
    case("no-weights", lambda d: os.remove(os.path.join(d, "model.safetensors")))
    case("truncated-weights", truncate)
    case("weights-garbage", write("model.safetensors", b"\xff" * 64))


def mean_rel(a, ref):
    return float((np.abs(a - ref).max(axis=1) / (ref.max(axis=1) - ref.min(axis=1))).mean())


def smollm2(tmp):
    """SmolLM2-135M-Instruct rebuilt as a Hugging Face F16 model (tests/hf/smollm2_to_hf.py)."""
    gguf_path = os.path.join(SRC, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    if not os.path.exists(gguf_path):
        sys.exit(f"FAIL: {gguf_path} is missing: run `bash scripts/fetch_model.sh` (scripts/test.sh does)")
    d = os.path.join(tmp, "smollm2_hf")
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, ".pydeps", "hf"))
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "hf", "smollm2_to_hf.py"), gguf_path, d],
                       env=env, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: rebuilding SmolLM2 as a Hugging Face model failed:\n" + r.stderr[-2000:])
    with open(os.path.join(d, "ref.json")) as f:
        ids = json.load(f)["ids"]
    ref = np.load(os.path.join(d, "ref_logits.npy"))
    out = os.path.join(tmp, "smollm2.npy")
    for flags, what in (((), "F16 in place"), (("--dequantize",), "fp32"), (("--decode",), "decoded")):
        got = our_logits(d, ids, out, *flags)
        err = worst_rel(got, ref)
        agree = float((got.argmax(axis=1) == ref.argmax(axis=1)).mean())
        check(err <= 1e-4 and agree == 1.0, f"SmolLM2 safetensors, {what}: worst |diff| / range {err:.2e} <= 1e-4, "
                                            f"argmax agrees at {agree:.0%} of {len(ids)} positions")
    # Converted to GGUF by longctx (Hugging Face -> llama GGUF), llama.cpp gives transformers' logits.
    g = os.path.join(tmp, "smollm2_from_hf.gguf")
    run("export", d, g, "--arch", "llama")
    llm = llama_cpp.Llama(g, n_ctx=64, n_threads=2, n_batch=64, n_ubatch=64, logits_all=True, verbose=False,
                          type_k=0, type_v=0)
    llm.eval(ids)
    err = worst_rel(np.array(llm.scores[: len(ids)], dtype=np.float64), ref)
    del llm
    check(err <= 1e-4, f"SmolLM2 exported from safetensors to GGUF, llama.cpp vs transformers: {err:.2e} <= 1e-4")
    os.remove(g)
    r = subprocess.run([BIN, "chat", "-m", d, "-n", "24", "--temp", "0"], input="What is the capital of France?\n",
                       capture_output=True, text=True)
    check(r.returncode == 0 and "Paris" in r.stdout, f"SmolLM2 safetensors, greedy chat answer: {r.stdout.strip()!r}")


def make_models(out):
    env = dict(os.environ, PYTHONPATH=os.path.join(SRC, ".pydeps", "hf"))
    r = subprocess.run(["/usr/bin/python3", os.path.join(SRC, "tests", "hf", "make_hf_models.py"), out], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("FAIL: making the transformers models failed (run `bash scripts/setup_hf.sh`; scripts/test.sh "
                 "does):\n" + r.stderr[-2000:])
    with open(os.path.join(out, "models.json")) as f:
        return json.load(f)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_models(tmp)
        for m in manifest:
            name = m["name"]
            d = os.path.join(tmp, name)
            with open(os.path.join(d, "tokens.json")) as f:
                t = json.load(f)
            ref = np.load(os.path.join(d, "ref_logits.npy"))
            out = os.path.join(tmp, name + ".npy")
            got = json.loads(run("logits", "-m", d, "-p", t["text"], "-o", out, "-t", "2"))
            ids = got["tokens"] if isinstance(got, dict) else got
            check(ids == t["text_ids"], f"{name}: tokenized as transformers' tokenizer ({len(ids)} tokens)")
            for flags, what in (((), "in place"), (("--dequantize",), "fp32"), (("--decode",), "decoded")):
                err = worst_rel(our_logits(d, t["seq"], out, *flags), ref)
                check(err <= 1e-4, f"{name} ({m['dtype']}{', sharded' if m['sharded'] else ''}), {what}: "
                                   f"worst |diff| / range {err:.2e} <= 1e-4")
            if m["model_type"] == "gpt2":
                # A context shorter than the position table: its first rows, the same greedy text.
                gen = lambda *extra: subprocess.run([BIN, "generate", "-m", d, "-p", "In the beginning", "-n", "8",
                                                     "--temp", "0", "--json", *extra], capture_output=True, text=True)
                a, b = gen(), gen("--ctx", "24")
                check(a.returncode == 0 and b.returncode == 0 and json.loads(a.stdout)["text"] == json.loads(b.stdout)["text"],
                      f"{name} at --ctx 24 (position table of {json.load(open(os.path.join(d, 'config.json')))['n_positions']}): "
                      f"the same greedy text {b.stderr.strip()[-200:]}")
            if m["model_type"] not in ("gpt2", "llama"):
                continue
            gguf = os.path.join(tmp, name + ".gguf")
            run("export", d, gguf, "--arch", m["model_type"])
            # llama.cpp's GELU reads a table of fp16 values: 5e-4 for gpt2 (measured ~1e-4), 1e-4 for llama.
            bound = 5e-4 if m["model_type"] == "gpt2" else 1e-4
            err = worst_rel(llama_logits(gguf, t["seq"]), ref)
            check(err <= bound, f"{name} exported as {m['model_type']} GGUF, llama.cpp vs transformers: {err:.2e} "
                                f"<= {bound:g}")
            err = worst_rel(our_logits(gguf, t["seq"], out), ref)
            check(err <= 1e-4, f"{name} exported as {m['model_type']} GGUF, longctx vs transformers: {err:.2e} <= 1e-4")
            q8 = os.path.join(tmp, name + ".Q8_0.gguf")
            run("quantize", gguf, q8, "Q8_0")
            # Both engines round activations to 8 bits against Q8_0 weights: each is compared with
            # the fp32 reference, and longctx must be as close as llama.cpp (within 25%).
            # (mean over positions of |diff| / range: the worst position alone is noisy).
            ours = mean_rel(our_logits(q8, t["seq"], out, "--decode"), ref)
            theirs = mean_rel(llama_logits(q8, t["seq"]), ref)
            check(ours <= 1.25 * theirs, f"{name} Q8_0 vs transformers' fp32, mean |diff| / range: longctx decode "
                                         f"{ours:.2e}, llama.cpp {theirs:.2e} (bound 1.25x)")
        bad_inputs(tmp, os.path.join(tmp, "gpt2_f32"))
        smollm2(tmp)
    if failures:
        sys.exit(f"{len(failures)} check(s) failed")
    print("all Hugging Face checks passed")


if __name__ == "__main__":
    main()
