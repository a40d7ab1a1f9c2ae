#!/usr/bin/env python3
"""Writes tests/golden/smollm2_logits.bin: reference logits of the real model
models/SmolLM2-135M-Instruct.Q4_1.gguf (fetch it with `bash scripts/fetch_model.sh`).

This is an independent NumPy reference of the llama-architecture forward pass,
sharing no code with the C++ engine. It reads the GGUF with pip's `gguf` package
(GGUFReader + gguf.quants.dequantize), converts every tensor to float64 and runs
the forward in float64:

  x = token_embd[ids]                                        (Q8_0)
  for each of the 30 blocks:
    h = rmsnorm(x) * attn_norm
    q = h Wq^T, k = h Wk^T, v = h Wv^T                       (9 q heads, 3 kv heads, head_dim 64)
    q, k = rope(q), rope(k)                                  adjacent pairs, see below
    a = softmax(q k^T / sqrt(64) + causal mask) v            (q head h reads kv head h // 3)
    x = x + a Wo^T
    h = rmsnorm(x) * ffn_norm
    x = x + Wdown^T (silu(h Wgate^T) * (h Wup^T))
  logits = (rmsnorm(x) * output_norm) token_embd^T           (tied output, no output.weight)
  rmsnorm(x) = x / sqrt(mean(x^2) + eps), eps = llama.attention.layer_norm_rms_epsilon

RoPE, as llama.cpp applies it for the llama architecture (GGML_ROPE_TYPE_NORM):
for each head, the ADJACENT pairs (x[2i], x[2i+1]), i = 0..31, are rotated by the
angle pos * theta^(-2i/64), theta = llama.rope.freq_base (100000):
  x'[2i]   = x[2i] cos - x[2i+1] sin
  x'[2i+1] = x[2i] sin + x[2i+1] cos
This is right because the HF -> GGUF converter permutes the rows of attn_q/attn_k
within each head (HF row s*32 + i -> GGUF row 2i + s), turning HF's rotate-half
pairing (x[i], x[i+32]) into adjacent pairs. The self-check below verifies it:
un-permuting the rows and using rotate-half reproduces the adjacent-pair logits to
rounding, while rotate-half on the GGUF rows as stored gives clearly worse
next-token predictions.

Prompts: 5 texts (prose, Python code, a chat-template conversation, a math word
problem, a story with a repeated sentence), tokenized by the small byte-level BPE
below (GGUF vocab + merges, pre-tokenizer "smollm": single digits, then the GPT-2
split regex; special tokens such as <|im_start|> matched first) and cut to their
first 64 tokens. The ids are hard-coded in PROMPTS (the source of truth); the
script re-tokenizes the texts and warns if the ids no longer match. Positions are
0..63 and no BOS is added (tokenizer.ggml.add_bos_token is false).

File format (all little-endian, no padding, nothing after the last row; read by
tests/golden/smollm2_golden.h):
  magic          4 bytes   "LCSG"
  version        u32       1
  n_prompts      u32       5
  seq_len        u32       64
  vocab_size     u32       49152
  n_subset       u32       512
  model_sha256   32 bytes  sha256 of the .gguf the logits were computed from
  subset_ids     i32[n_subset]   distinct vocab ids, ascending; drawn with
                                 numpy.random.default_rng(SUBSET_SEED), same for every row
  then for each prompt p (n_prompts times):
    tokens       i32[seq_len]    input ids, at positions 0..seq_len-1
    then for each position t = 0..seq_len-1 (row t predicts token t+1 from tokens 0..t):
      argmax_id     i32          argmax over the full vocab of the logits
      argmax_logit  f64          its logit
      second_id     i32          runner-up id (second largest logit)
      second_logit  f64          its logit (argmax_logit - second_logit = the margin
                                 a fp32 engine needs to reproduce the argmax)
      logsumexp     f64          log(sum over all vocab_size ids of exp(logit))
      subset_logits f64[n_subset] logits at subset_ids, in that order
Size: 56 + 4*n_subset + n_prompts*(4*seq_len + seq_len*(32 + 8*n_subset)) bytes
(1,324,344 for 5 x 64 x 512).

Usage: OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python3 tests/golden/make_smollm2_golden.py
           [--model PATH] [--out PATH] [--check-only]
Needs numpy, gguf and regex (pip). The checks run first; nothing is written if one fails.
"""

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse
import hashlib
import struct
import sys
import time

import numpy as np
import regex
from gguf import GGUFReader
from gguf.quants import dequantize

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_OUT = os.path.join(HERE, "smollm2_logits.bin")
EXPECTED_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

MAGIC = b"LCSG"
VERSION = 1
SEQ_LEN = 64
N_SUBSET = 512
SUBSET_SEED = 20250115
GREEDY_STEPS = 10

# The intended texts; each is cut to its first SEQ_LEN tokens.
TEXTS = [
    # 0: encyclopedic English prose
    "The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
    "It is named after the engineer Gustave Eiffel, whose company designed and built the tower "
    "for the 1889 World's Fair. Although it was criticised by some of France's leading artists "
    "and intellectuals for its design, it has since become a global cultural icon of France "
    "and one of the most recognisable structures in the world.",
    # 1: Python code
    "def fibonacci(n):\n"
    "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    if n < 2:\n"
    "        return n\n"
    "    a, b = 0, 1\n"
    "    for _ in range(n - 1):\n"
    "        a, b = b, a + b\n"
    "    return b\n"
    "\n"
    "\n"
    "if __name__ == \"__main__\":\n"
    "    for i in range(10):\n"
    "        print(i, fibonacci(i))\n",
    # 2: chat template (the model's own system prompt)
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n<|im_start|>user\nWhat are three simple tips for staying healthy?<|im_end|>\n"
    "<|im_start|>assistant\n1. Eat a balanced diet with plenty of fruits and vegetables.\n"
    "2. Exercise regularly, for example a brisk walk of thirty minutes a day.\n"
    "3. Get enough sleep every night.<|im_end|>\n",
    # 3: arithmetic word problem (digits are single tokens)
    "Question: A train leaves the station at 9:15 and travels 240 kilometers at an average "
    "speed of 80 kilometers per hour. At what time does it arrive?\n"
    "Answer: The trip takes 240 / 80 = 3 hours, so the train arrives at 9:15 + 3:00 = 12:15. "
    "The answer is 12:15.",
    # 4: story with a repeated sentence (long-range copying exercises attention + RoPE)
    "Once upon a time, in a small village by the sea, there lived an old fisherman named Tom. "
    "Every morning he said: the blue boat sails at dawn and returns before the evening storm. "
    "The children laughed, but Tom only smiled and repeated: the blue boat sails at dawn and "
    "returns before the evening storm. One autumn morning the storm came early, and the "
    "whole village waited on the shore.",
]

# Token ids: the first 64 tokens of TEXTS[i], from Tokenizer.encode below (hard-coded: the golden
# must not change if the tokenizer code changes).
PROMPTS = [
    [504, 414, 46682, 18669, 314, 253, 34554, 29, 1009, 27672, 11637, 335, 260, 21633, 367, 7621,
     281, 7042, 28, 4649, 30, 657, 314, 3365, 990, 260, 10776, 26821, 1134, 414, 46682, 28, 3449,
     2727, 2724, 284, 2837, 260, 11637, 327, 260, 216, 33, 40, 40, 41, 2260, 506, 11285, 30,
     3483, 357, 436, 44777, 411, 634, 282, 4649, 506, 2899, 4936, 284, 27478, 327],
    [1604, 3987, 46477, 24, 94, 727, 472, 1620, 14362, 260, 304, 29, 373, 24681, 46477, 1230,
     7996, 472, 585, 304, 2067, 216, 34, 42, 448, 1003, 304, 472, 253, 28, 278, 446, 216, 32, 28,
     216, 33, 472, 327, 2483, 281, 1845, 24, 94, 731, 216, 33, 727, 448, 253, 28, 278, 446, 278,
     28, 253, 1232, 278, 472, 1003, 278, 1116, 198, 342],
    [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 308, 34519, 28, 7018, 411, 407,
     19712, 8182, 2, 198, 1, 4093, 198, 1780, 359, 1296, 2232, 5608, 327, 9286, 2458, 47, 2, 198,
     1, 520, 9531, 198, 33, 30, 16478, 253, 8609, 2714, 351, 7568, 282, 5574, 284, 5136, 30, 198,
     34, 30, 15382, 5578, 28, 327, 1183, 253, 34982, 4549, 282],
    [17872, 42, 330, 4445, 3711, 260, 5729, 418, 216, 41, 42, 33, 37, 284, 12517, 216, 34, 36,
     32, 12091, 418, 354, 3049, 3547, 282, 216, 40, 32, 12091, 567, 5353, 30, 1814, 732, 655,
     1072, 357, 11296, 47, 198, 21350, 42, 378, 7022, 2933, 216, 34, 36, 32, 2272, 216, 40, 32,
     446, 216, 35, 2737, 28, 588, 260, 4445, 20623, 418, 216],
    [6403, 1980, 253, 655, 28, 281, 253, 1165, 6560, 411, 260, 3426, 28, 665, 4161, 354, 1573,
     43663, 3365, 8581, 30, 5081, 5738, 384, 1137, 42, 260, 4461, 9741, 38203, 418, 16804, 284,
     6765, 1092, 260, 9053, 5670, 30, 378, 1122, 31058, 28, 564, 8581, 805, 18628, 284, 6514, 42,
     260, 4461, 9741, 38203, 418, 16804, 284, 6765, 1092, 260, 9053, 5670, 30, 1963],
]


# ---------------------------------------------------------------- tokenizer (byte-level BPE)

def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


GPT2_SPLIT = regex.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")
DIGIT_SPLIT = regex.compile(r"\p{N}")


class Tokenizer:
    def __init__(self, tokens, token_types, merges):
        self.tokens = tokens
        self.vocab = {t: i for i, t in enumerate(tokens)}
        self.ranks = {tuple(m.split(" ")): r for r, m in enumerate(merges)}
        self.byte_enc = bytes_to_unicode()
        self.byte_dec = {c: b for b, c in self.byte_enc.items()}
        specials = [t for t, ty in zip(tokens, token_types) if ty == 3]
        specials.sort(key=len, reverse=True)
        self.special_re = regex.compile("(" + "|".join(regex.escape(s) for s in specials) + ")")
        self.specials = set(specials)

    def _bpe(self, piece):
        word = [self.byte_enc[b] for b in piece.encode("utf-8")]
        while len(word) > 1:
            best, best_rank = None, None
            for i in range(len(word) - 1):
                r = self.ranks.get((word[i], word[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            pair = (word[best], word[best + 1])
            out, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and (word[i], word[i + 1]) == pair:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return [self.vocab[w] for w in word]

    @staticmethod
    def _pretokenize(text):
        # "smollm" pre-tokenizer: every digit on its own, then the GPT-2 regex inside each piece.
        pieces, last = [], 0
        for m in DIGIT_SPLIT.finditer(text):
            if m.start() > last:
                pieces.append(text[last:m.start()])
            pieces.append(m.group())
            last = m.end()
        if last < len(text):
            pieces.append(text[last:])
        out = []
        for p in pieces:
            out.extend(GPT2_SPLIT.findall(p))
        return out

    def encode(self, text):
        ids = []
        for part in self.special_re.split(text):
            if not part:
                continue
            if part in self.specials:
                ids.append(self.vocab[part])
                continue
            for piece in self._pretokenize(part):
                ids.extend(self._bpe(piece))
        return ids

    def decode(self, ids):
        out = bytearray()
        for i in ids:
            t = self.tokens[i]
            if t in self.specials:
                out += t.encode("utf-8")
            else:
                out += bytes(self.byte_dec[c] for c in t)
        return out.decode("utf-8", errors="replace")


# ---------------------------------------------------------------- model loading

def field(reader, key):
    return reader.fields[key].contents()


def q4_1_dequant_independent(raw, rows, cols):
    """Q4_1 blocks of 32: f16 d, f16 m, 16 bytes; low nibbles are elements 0..15, high 16..31."""
    blk = np.frombuffer(raw.tobytes(), dtype=np.uint8).reshape(rows, cols // 32, 20)
    d = blk[:, :, 0:2].copy().view(np.float16).astype(np.float64)
    m = blk[:, :, 2:4].copy().view(np.float16).astype(np.float64)
    qs = blk[:, :, 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=2).astype(np.float64)
    return (q * d + m).reshape(rows, cols)


class Model:
    def __init__(self, path):
        r = GGUFReader(path)
        assert field(r, "general.architecture") == "llama"
        self.n_layers = int(field(r, "llama.block_count"))
        self.dim = int(field(r, "llama.embedding_length"))
        self.n_heads = int(field(r, "llama.attention.head_count"))
        self.n_kv = int(field(r, "llama.attention.head_count_kv"))
        self.ff = int(field(r, "llama.feed_forward_length"))
        self.eps = float(field(r, "llama.attention.layer_norm_rms_epsilon"))
        self.theta = float(field(r, "llama.rope.freq_base"))
        self.head_dim = self.dim // self.n_heads
        assert int(field(r, "llama.rope.dimension_count")) == self.head_dim
        self.tokenizer = Tokenizer(field(r, "tokenizer.ggml.tokens"),
                                   field(r, "tokenizer.ggml.token_type"),
                                   field(r, "tokenizer.ggml.merges"))
        self.w = {}
        self.types = {}
        for t in r.tensors:
            a = dequantize(t.data, t.tensor_type)
            shape = tuple(int(s) for s in reversed(t.shape.tolist()))  # numpy order: (rows, cols)
            self.w[t.name] = np.asarray(a, dtype=np.float64).reshape(shape)
            self.types[t.name] = t.tensor_type.name
            if t.name == "blk.0.attn_q.weight":
                assert t.tensor_type.name == "Q4_1"
                ref = q4_1_dequant_independent(t.data, *shape)
                self.q4_1_check = float(np.max(np.abs(ref - self.w[t.name])))
        self.vocab = self.w["token_embd.weight"].shape[0]
        assert "output.weight" not in self.w, "expected tied output embeddings"

    def unpermuted_qk(self):
        """attn_q / attn_k rows back in HF order: GGUF row 2i+s of a head -> HF row s*hd/2 + i."""
        hd = self.head_dim
        out = {}
        for l in range(self.n_layers):
            for name, nh in (("attn_q", self.n_heads), ("attn_k", self.n_kv)):
                key = f"blk.{l}.{name}.weight"
                w = self.w[key]
                out[key] = w.reshape(nh, hd // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)
        return out

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pairing):
        """x: [B, T, heads, hd]; pairing 'adjacent' (x[2i], x[2i+1]) or 'half' (x[i], x[i+hd/2])."""
        T, hd = x.shape[1], x.shape[3]
        inv = self.theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)  # theta^(-2i/hd)
        ang = np.arange(T, dtype=np.float64)[:, None] * inv[None, :]       # [T, hd/2]
        cos = np.cos(ang)[None, :, None, :]
        sin = np.sin(ang)[None, :, None, :]
        if pairing == "adjacent":
            a, b = x[..., 0::2], x[..., 1::2]
            out = np.empty_like(x)
            out[..., 0::2] = a * cos - b * sin
            out[..., 1::2] = a * sin + b * cos
            return out
        assert pairing == "half"
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return np.concatenate([a * cos - b * sin, a * sin + b * cos], axis=-1)

    def forward(self, ids, pairing="adjacent", qk_override=None):
        """ids: int array [B, T] at positions 0..T-1. Returns float64 logits [B, T, vocab]."""
        w = dict(self.w)
        if qk_override:
            w.update(qk_override)
        ids = np.asarray(ids)
        B, T = ids.shape
        H, KV, hd = self.n_heads, self.n_kv, self.head_dim
        rep = H // KV
        x = w["token_embd.weight"][ids]  # [B, T, D]
        mask = np.triu(np.full((T, T), -np.inf), k=1)
        scale = 1.0 / np.sqrt(hd)
        for l in range(self.n_layers):
            p = f"blk.{l}."
            h = self.rmsnorm(x, w[p + "attn_norm.weight"])
            q = (h @ w[p + "attn_q.weight"].T).reshape(B, T, H, hd)
            k = (h @ w[p + "attn_k.weight"].T).reshape(B, T, KV, hd)
            v = (h @ w[p + "attn_v.weight"].T).reshape(B, T, KV, hd)
            q = self.rope(q, pairing)
            k = self.rope(k, pairing)
            kh = np.repeat(k, rep, axis=2)  # q head j reads kv head j // rep
            vh = np.repeat(v, rep, axis=2)
            q, kh, vh = (a.transpose(0, 2, 1, 3) for a in (q, kh, vh))  # [B, H, T, hd]
            s = q @ kh.transpose(0, 1, 3, 2) * scale + mask
            s = np.exp(s - s.max(axis=-1, keepdims=True))
            s /= s.sum(axis=-1, keepdims=True)
            a = (s @ vh).transpose(0, 2, 1, 3).reshape(B, T, H * hd)
            x = x + a @ w[p + "attn_output.weight"].T
            h = self.rmsnorm(x, w[p + "ffn_norm.weight"])
            g = h @ w[p + "ffn_gate.weight"].T
            u = h @ w[p + "ffn_up.weight"].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ w[p + "ffn_down.weight"].T
        x = self.rmsnorm(x, w["output_norm.weight"])
        return x @ w["token_embd.weight"].T


def logsumexp(z):
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def next_token_nll(logits, ids):
    """Mean -log p(ids[t+1] | ids[..t]) over all rows and t < T-1."""
    lse = logsumexp(logits[:, :-1])
    tgt = np.take_along_axis(logits[:, :-1], ids[:, 1:, None], axis=-1)[..., 0]
    return float(np.mean(lse - tgt))


# ---------------------------------------------------------------- main

def verify_file(path, ids, logits, subset, sha):
    """Parses the written file as a reader would and checks it against the in-memory results."""
    buf = open(path, "rb").read()
    assert buf[:4] == MAGIC
    version, n_prompts, seq_len, vocab, n_subset = struct.unpack_from("<5I", buf, 4)
    assert (version, n_prompts, seq_len, vocab, n_subset) == \
        (VERSION, ids.shape[0], ids.shape[1], logits.shape[2], len(subset))
    assert buf[24:56] == sha
    off = 56
    sub = np.frombuffer(buf, "<i4", n_subset, off); off += 4 * n_subset
    assert np.array_equal(sub, subset) and np.all(np.diff(sub) > 0)
    row = np.dtype([("argmax_id", "<i4"), ("argmax_logit", "<f8"), ("second_id", "<i4"),
                    ("second_logit", "<f8"), ("logsumexp", "<f8"), ("subset", "<f8", (n_subset,))])
    assert row.itemsize == 32 + 8 * n_subset
    for p in range(n_prompts):
        assert np.array_equal(np.frombuffer(buf, "<i4", seq_len, off), ids[p]); off += 4 * seq_len
        r = np.frombuffer(buf, row, seq_len, off); off += row.itemsize * seq_len
        lg = logits[p]
        assert np.array_equal(r["argmax_id"], lg.argmax(-1))
        assert np.array_equal(r["argmax_logit"], lg.max(-1))
        assert np.all(r["second_id"] != r["argmax_id"])
        assert np.array_equal(r["second_logit"], lg[np.arange(seq_len), r["second_id"]])
        assert np.all(r["second_logit"] <= r["argmax_logit"])
        assert np.all((lg > r["second_logit"][:, None]).sum(-1) == 1)
        assert np.array_equal(r["subset"], lg[:, subset])
        assert np.all(r["subset"] <= r["argmax_logit"][:, None])
        assert np.allclose(r["logsumexp"], logsumexp(lg), rtol=0, atol=1e-12)
        assert np.all(r["logsumexp"] > r["argmax_logit"])
    assert off == len(buf), (off, len(buf))
    print(f"read back {path}: OK")


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check-only", action="store_true", help="run the checks, write nothing")
    args = ap.parse_args()
    if not os.path.exists(args.model):
        sys.exit(f"{args.model} missing: run `bash scripts/fetch_model.sh`")

    t0 = time.time()
    sha = sha256_file(args.model)
    if sha.hex() != EXPECTED_SHA256:
        print(f"WARNING: model sha256 {sha.hex()} differs from the expected {EXPECTED_SHA256}")
    m = Model(args.model)
    tok = m.tokenizer
    print(f"loaded + dequantized {len(m.w)} tensors in {time.time() - t0:.1f}s: "
          f"layers={m.n_layers} dim={m.dim} heads={m.n_heads} kv={m.n_kv} hd={m.head_dim} "
          f"ff={m.ff} vocab={m.vocab} eps={m.eps!r} theta={m.theta!r}")
    print(f"Q4_1 dequant, gguf vs independent decode (blk.0.attn_q): max|diff| = {m.q4_1_check:.3g}")
    failures = []
    if m.q4_1_check > 1e-6:
        failures.append("Q4_1 dequantization mismatch")

    # Prompts: hard-coded ids vs a fresh tokenization of the texts.
    ids = np.array(PROMPTS, dtype=np.int64)
    assert ids.shape == (len(TEXTS), SEQ_LEN), ids.shape
    assert ids.min() >= 0 and ids.max() < m.vocab
    for i, text in enumerate(TEXTS):
        enc = tok.encode(text)
        if tok.decode(enc) != text:
            failures.append(f"tokenizer round trip failed on text {i}")
        if len(enc) < SEQ_LEN:
            failures.append(f"text {i} has only {len(enc)} tokens")
        if enc[:SEQ_LEN] != PROMPTS[i]:
            print(f"WARNING: text {i} now tokenizes to {enc[:SEQ_LEN]} (PROMPTS keeps the stored ids)")
        print(f"prompt {i}: {tok.decode(PROMPTS[i])!r}")

    # Check 1: plausible continuations: top-5 next tokens, then a short greedy continuation.
    t1 = time.time()
    probe_texts = ["The capital of France is",
                   "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"]
    for text in probe_texts:
        for pairing in ("adjacent", "half"):
            pid = tok.encode(text)
            lg = m.forward(np.array([pid]), pairing)[0, -1]
            lp = lg - logsumexp(lg)
            top = np.argsort(-lg)[:5]
            desc = ", ".join(f"{tok.decode([int(j)])!r} {np.exp(lp[j]):.3f}" for j in top)
            print(f"top-5 after {text!r} [{pairing}]: {desc}")
            for _ in range(GREEDY_STEPS):
                pid.append(int(m.forward(np.array([pid]), pairing)[0, -1].argmax()))
            cont = tok.decode(pid[len(tok.encode(text)):])
            print(f"  greedy {GREEDY_STEPS} tokens [{pairing}]: {cont!r}")
            if pairing == "adjacent" and "Paris" not in cont:
                failures.append(f"greedy continuation of {text!r} does not mention Paris")

    # Check 2: the RoPE convention matters and adjacent pairs on GGUF rows == rotate-half on HF rows.
    t_fwd = time.time()
    logits = m.forward(ids, "adjacent")
    t_fwd = time.time() - t_fwd
    logits_half = m.forward(ids, "half")
    logits_hf = m.forward(ids, "half", qk_override=m.unpermuted_qk())
    nll_adj, nll_half = next_token_nll(logits, ids), next_token_nll(logits_half, ids)
    acc = lambda lg: float(np.mean(lg[:, :-1].argmax(-1) == ids[:, 1:]))
    d_conv = float(np.max(np.abs(logits - logits_half)))
    d_equiv = float(np.max(np.abs(logits - logits_hf)))
    print(f"next-token NLL over the 5 prompts: adjacent pairs {nll_adj:.4f} (top-1 acc {acc(logits):.3f}), "
          f"rotate-half on GGUF rows {nll_half:.4f} (top-1 acc {acc(logits_half):.3f})")
    print(f"max|logits(adjacent) - logits(rotate-half, GGUF rows)| = {d_conv:.4f}  "
          f"(logit range {float(logits.max() - logits.min()):.2f})")
    print(f"max|logits(adjacent, GGUF rows) - logits(rotate-half, un-permuted HF rows)| = {d_equiv:.3g}")
    if not nll_adj < nll_half - 0.5:
        failures.append("adjacent-pair RoPE is not clearly better than rotate-half")
    if d_equiv > 1e-9:
        failures.append("un-permuted rotate-half does not reproduce adjacent-pair RoPE")
    if d_conv < 1.0:
        failures.append("the RoPE pairing barely changes the logits")
    for p in range(len(PROMPTS)):
        print(f"  prompt {p}: NLL adjacent {next_token_nll(logits[p:p + 1], ids[p:p + 1]):.3f}, "
              f"rotate-half {next_token_nll(logits_half[p:p + 1], ids[p:p + 1]):.3f}")
    print(f"checks: {time.time() - t1:.1f}s (the 5x64 float64 forward itself: {t_fwd:.1f}s)")

    if failures:
        for f in failures:
            print("FAIL:", f)
        sys.exit(1)
    print("all checks passed")
    if args.check_only:
        return

    # Golden file.
    rng = np.random.default_rng(SUBSET_SEED)
    subset = np.sort(rng.choice(m.vocab, size=N_SUBSET, replace=False)).astype(np.int64)
    order = np.argsort(-logits, axis=-1, kind="stable")
    lse = logsumexp(logits)
    out = bytearray()
    out += MAGIC
    out += struct.pack("<5I", VERSION, len(PROMPTS), SEQ_LEN, m.vocab, N_SUBSET)
    out += sha
    out += subset.astype("<i4").tobytes()
    for p in range(len(PROMPTS)):
        out += ids[p].astype("<i4").tobytes()
        for t in range(SEQ_LEN):
            a, b = int(order[p, t, 0]), int(order[p, t, 1])
            out += struct.pack("<idid", a, logits[p, t, a], b, logits[p, t, b])
            out += struct.pack("<d", lse[p, t])
            out += logits[p, t, subset].astype("<f8").tobytes()
    expect = 56 + 4 * N_SUBSET + len(PROMPTS) * (4 * SEQ_LEN + SEQ_LEN * (32 + 8 * N_SUBSET))
    assert len(out) == expect, (len(out), expect)
    with open(args.out + ".tmp", "wb") as f:
        f.write(out)
    os.replace(args.out + ".tmp", args.out)
    print(f"wrote {args.out}: {len(out)} bytes")
    verify_file(args.out, ids, logits, subset, sha)
    margins = logits[np.arange(len(PROMPTS))[:, None], np.arange(SEQ_LEN)[None, :], order[..., 0]] - \
        logits[np.arange(len(PROMPTS))[:, None], np.arange(SEQ_LEN)[None, :], order[..., 1]]
    print(f"argmax margins (argmax_logit - second_logit): min {margins.min():.4g}, "
          f"rows with margin < 0.01: {int((margins < 0.01).sum())}; total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
