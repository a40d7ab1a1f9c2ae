#!/usr/bin/python3
"""Writes the whole-model golden files tests/golden/model_<name>.bin.

For each config below: build the reference model (tests/golden/torch_model.py)
in float64 with seeded random weights (rounded to float32 so the stored float32
weights are exactly the ones used), run a forward on seeded random tokens,
compute the mean cross-entropy loss, backpropagate, and store everything.

Init: N(0, 0.02) matrices and embeddings, 1 + N(0, 0.1) norm weights,
N(0, 0.02) biases -- except attn_q/attn_k weights, which use N(0, QK_STD=0.15):
with 0.02 everywhere attention is almost uniform (|scores| ~ 1e-2) and e.g. a
rotate_half RoPE would move the logits by only ~1e-3. The script measures that
sensitivity (wrong RoPE pairing / reversed ALiBi slopes / no position term) and
requires it to be well above float32 noise. (CoLT5 attention's attn_light_q/k use
QK_STD too.)

CoLT5 configs (key "colt5"): the heavy branches' matrices (ffn_gate/up/down; attn_q/k/v/
output) are doubled after the init, every router's threshold is placed in a wide gap of
its scores near the target quantile (the smallest |z - tau| is printed and must exceed
1e-3, so float32 routes as float64 does and finite differences flip no routing), the
thresholds' gradients are their moving-average updates (torch_model.py,
threshold_grad), and the logits' change with the gates replaced by the routed
indicator ("ungated", and per attention router) must be well above float32 noise.

Self-checks before anything is written: conventions (ALiBi slopes, RoPE as
complex rotation, sinusoidal table), a central finite-difference check of
several gradient entries per config in float64, and a float32 replay of the loss.

Usage: /usr/bin/python3 tests/golden/make_model_golden.py [--out DIR] [--check-only]
                                                         [--only NAME[,NAME...]]
(--only writes just the named configs, e.g. new ones, leaving the others' files untouched;
each config's seed depends only on its position in CONFIGS, so appending keeps the old files
byte-identical.)

Golden file format (all little-endian; read by tests/golden/golden_file.h):
  magic    4 bytes  "LCGT"
  version  u32      1
  count    u32      number of records
  then `count` records, each:
    name_len u32, name  name_len bytes (ASCII, no terminator)
    dtype    u8       0 = float32, 1 = int32, 2 = float64, 3 = UTF-8 bytes
    ndim     u32
    dims     i64[ndim]                (ndim 0 = scalar, 1 element)
    payload  prod(dims) elements of dtype, packed (no padding)
  and nothing after the last record.
Records written, in this order:
  "config"   string  JSON model config (exactly the model keys, incl. the
                     defaults norm_eps / rope_theta; sorted). The optional
                     keys patterns / rope_scaling appear only in configs
                     that set them.
  "meta"     string  JSON: batch, seq_len, seed, init description, generator
  "tokens"   int32   [B, T]   input ids
  "targets"  int32   [B, T]   target ids
  "loss"     float64 []       mean cross-entropy over B*T
  "logits"   float32 [B, T, V]
  every parameter   float32, by its longctx name (e.g. "blk.0.attn_q.weight")
  every gradient    float32, name + ".grad" (d loss / d param; for tied
                    embeddings token_embd.weight.grad includes both uses)
Values are computed in float64 and stored as float32 (loss stays float64).
"""

import argparse
import json
import math
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_model as tm  # noqa: E402

B, T = 2, 11
# Configs that need longer sequences (BigBird blocks only matter past a few blocks).
SEQ_LEN = {"bigbird_rope": 24}
BASE = dict(vocab_size=67, model_dim=32, n_layers=2, heads=4, kv_heads=4, head_dim=8,
            ff_dim=48, ctx=16, norm_eps=1e-5, rope_theta=10000.0)


def cfg(**kw):
    c = dict(BASE)
    c.update(kw)
    return c


# name -> config. Sizes keep every file under 200 KB.
CONFIGS = [
    ("learned_mha", cfg(pos="learned", norm="layernorm", mlp="gelu", bias=True,
                        tied_embeddings=False, kv_heads=4)),
    ("sinusoidal_gqa", cfg(pos="sinusoidal", norm="layernorm", mlp="gelu", bias=True,
                           tied_embeddings=True, kv_heads=2)),
    ("rope_gqa_tied", cfg(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                          tied_embeddings=True, kv_heads=2)),
    ("rope_mqa", cfg(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                     tied_embeddings=False, kv_heads=1)),
    ("alibi_mha", cfg(pos="alibi", norm="layernorm", mlp="gelu", bias=False,
                      tied_embeddings=False, kv_heads=4)),
    # 6 heads (non power of two slopes), D=48; one layer keeps the file < 200 KB.
    ("alibi6_gqa", cfg(pos="alibi", norm="rmsnorm", mlp="swiglu", bias=False,
                       tied_embeddings=False, heads=6, kv_heads=3, head_dim=8,
                       model_dim=48, n_layers=1)),
    ("none_mha", cfg(pos="none", norm="rmsnorm", mlp="gelu", bias=True,
                     tied_embeddings=True, kv_heads=4)),
    # H*hd = 64 != D = 32 (catches code assuming H*hd == D); rope with q/k biases,
    # layernorm + swiglu with biases. One layer keeps the file < 200 KB.
    ("rope_wide_gqa", cfg(pos="rope", norm="layernorm", mlp="swiglu", bias=True,
                          tied_embeddings=False, heads=4, kv_heads=2, head_dim=16,
                          n_layers=1)),
    # Attention patterns and RoPE scaling (optional config keys "patterns", "rope_scaling").
    # Local / global layers with ALiBi and GQA; windows 4 and 2 < T = 11. ff_dim 32 keeps the
    # three layers under 200 KB.
    ("window_alibi_gqa", cfg(pos="alibi", norm="rmsnorm", mlp="swiglu", bias=False,
                             tied_embeddings=True, kv_heads=2, n_layers=3, ff_dim=32,
                             patterns=["window:4", "causal", "window:2"])),
    # BigBird (block 4, 2 window blocks, 1 global block, no random blocks) in every layer:
    # 24 tokens = 6 blocks, so blocks 2..5 skip the ones between the global block and
    # their window.
    ("bigbird_rope", cfg(pos="rope", norm="layernorm", mlp="gelu", bias=True,
                         tied_embeddings=True, kv_heads=2, ctx=24,
                         patterns=["bigbird:4,2,1,0", "bigbird:4,2,1,0"])),
    # YaRN 4x from an original context of 256 (ctx 1024): with head_dim 8 and theta 1e4 the
    # pairs turn 40.7, 4.07, 0.41, 0.04 times over 256 positions, so one pair is kept, one
    # blended and two interpolated; cos/sin carry 0.1 ln 4 + 1.
    ("yarn_window", cfg(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                        tied_embeddings=False, kv_heads=1, ctx=1024, rope_scaling="yarn:4,256",
                        patterns=["window:5", "causal"])),
    # Position interpolation 2x with a small BigBird (block 2) and a window layer.
    ("linear_rope_mixed", cfg(pos="rope", norm="rmsnorm", mlp="gelu", bias=True,
                              tied_embeddings=True, kv_heads=4, ctx=32, rope_scaling="linear:2",
                              patterns=["bigbird:2,2,1,0", "window:3"])),
    ("colt5_ffn_swiglu", cfg(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                             tied_embeddings=True, kv_heads=2, n_layers=2,
                             colt5="ffn=light:8,heavy:40,route:1/4")),
    ("colt5_ffn_gelu", cfg(pos="alibi", norm="layernorm", mlp="gelu", bias=True,
                           tied_embeddings=False, kv_heads=4, n_layers=2,
                           colt5="ffn=light:0,heavy:64,route:1/8")),
    # CoLT5 routed attention: GQA (2 heavy heads over 2 kv heads, 2 light heads over 1 kv
    # head), a light window of 3 < T, a third of the queries and half the key/values routed.
    ("colt5_attn_rope", cfg(pos="rope", norm="rmsnorm", mlp="swiglu", bias=False,
                            tied_embeddings=True, kv_heads=2, n_layers=2,
                            colt5="attn=window:3,light_heads:2,route_q:1/3,route_kv:1/2")),
    # Routed attention (1 light head, 3 heavy ones: non power-of-two ALiBi slopes) and the
    # routed feed-forward together, with biases (a query that sees no routed key gets the
    # output bias).
    ("colt5_attn_ffn_alibi", cfg(pos="alibi", norm="layernorm", mlp="gelu", bias=True,
                                 tied_embeddings=False, kv_heads=4, n_layers=2,
                                 colt5="ffn=light:8,heavy:40,route:1/4;"
                                       "attn=window:4,light_heads:1,route_q:1/2,route_kv:1/2")),
]

MAX_BYTES = 200 * 1024
QK_STD = 0.15

DT_F32, DT_I32, DT_F64, DT_STR = 0, 1, 2, 3


# ---------------------------------------------------------------------------
# writer
def _record(name, dtype, dims, payload):
    nb = name.encode("ascii")
    out = struct.pack("<I", len(nb)) + nb + struct.pack("<BI", dtype, len(dims))
    out += struct.pack("<%dq" % len(dims), *dims) if dims else b""
    return out + payload


def rec_tensor(name, t, dtype):
    t = t.detach().cpu().contiguous()
    if dtype == DT_F32:
        payload = t.to(torch.float32).numpy().astype("<f4").tobytes()
    elif dtype == DT_I32:
        payload = t.to(torch.int32).numpy().astype("<i4").tobytes()
    elif dtype == DT_F64:
        payload = t.to(torch.float64).numpy().astype("<f8").tobytes()
    else:
        raise ValueError(dtype)
    return _record(name, dtype, list(t.shape), payload)


def rec_string(name, s):
    b = s.encode("utf-8")
    return _record(name, DT_STR, [len(b)], b)


def write_golden(path, records):
    blob = b"LCGT" + struct.pack("<II", 1, len(records)) + b"".join(records)
    with open(path, "wb") as f:
        f.write(blob)
    return len(blob)


# ---------------------------------------------------------------------------
# self-checks of the reference
def check_conventions():
    # ALiBi slopes from the paper.
    s8 = tm.alibi_slopes(8)
    assert all(abs(a - b) < 1e-15 for a, b in zip(s8, [2.0 ** -(i + 1) for i in range(8)]))
    s6 = tm.alibi_slopes(6)
    want6 = [2 ** -2, 2 ** -4, 2 ** -6, 2 ** -8, 2 ** -1, 2 ** -3]
    assert all(abs(a - b) < 1e-15 for a, b in zip(s6, want6)), s6
    # Adjacent-pair RoPE == complex multiplication of (x[2i] + i x[2i+1]) by e^{i*ang}.
    g = torch.Generator().manual_seed(7)
    x = torch.randn(1, 5, 2, 8, generator=g, dtype=torch.float64)
    cos, sin = tm.rope_tables(5, 8, 10000.0)
    r = tm.apply_rope(x, cos, sin)
    xc = torch.view_as_complex(x.reshape(1, 5, 2, 4, 2).contiguous())
    pos = torch.arange(5, dtype=torch.float64)[:, None]
    ang = pos * 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    rc = torch.view_as_real(xc * torch.polar(torch.ones_like(ang), ang)[None, :, None, :])
    assert torch.allclose(r, rc.reshape(1, 5, 2, 8), atol=1e-14)
    # Masks: the vectorised pattern_mask against the definitions, one pair at a time.
    def visible(spec, q, k):
        if k > q:
            return False
        if spec == "causal":
            return True
        if spec.startswith("window:"):
            return q - k < int(spec[7:])
        blk, win, glob, _ = (int(v) for v in spec[8:].split(","))
        i, j = q // blk, k // blk
        return i < glob or j < glob or i - win + 1 <= j <= i
    for spec in ("causal", "window:1", "window:4", "bigbird:4,2,1,0", "bigbird:2,3,2,0",
                 "bigbird:3,1,0,0"):
        m = tm.pattern_mask(spec, 26)
        for q in range(26):
            for k in range(26):
                assert bool(m[q, k]) == (not visible(spec, q, k)), (spec, q, k)
    # RoPE scaling: linear = positions divided by F; yarn pair by pair in scalar math.
    c1, s1 = tm.rope_tables(9, 8, 10000.0, tm.parse_rope_scaling("linear:3", 16))
    c0, s0 = tm.rope_tables(27, 8, 10000.0)
    assert torch.allclose(c1[3], c0[1], atol=1e-15) and torch.allclose(s1[6], s0[2], atol=1e-15)
    cy, sy = tm.rope_tables(300, 8, 10000.0, tm.parse_rope_scaling("yarn:4,256", 1024))
    mag = 0.1 * math.log(4) + 1
    for i in range(4):
        f = 10000.0 ** (-2.0 * i / 8)
        rot = 256 / (2 * math.pi / f)
        gm = min(max((rot - 1) / 31, 0.0), 1.0)
        f2 = (1 - gm) * f / 4 + gm * f
        assert abs(cy[299, i] - mag * math.cos(299 * f2)) < 1e-12
        assert abs(sy[299, i] - mag * math.sin(299 * f2)) < 1e-12
    # CoLT5 attention with no light head and every row routed is the dense attention.
    for pos, kvh in (("rope", 2), ("alibi", 4)):
        dense = cfg(pos=pos, norm="rmsnorm", mlp="gelu", bias=True, tied_embeddings=True,
                    kv_heads=kvh, n_layers=1)
        routed = dict(dense, colt5="attn=light_heads:0,route_q:1,route_kv:1")
        md, mr = tm.DecoderLM(dense, dtype=torch.float64), tm.DecoderLM(routed, dtype=torch.float64)
        assert [n for n, _, _ in md.specs] == [n for n, _, _ in mr.specs]
        md.init_weights(3, qk_std=QK_STD)
        mr.load_state_dict(md.state_dict())
        toks = torch.randint(0, 67, (2, 9), generator=torch.Generator().manual_seed(5))
        with torch.no_grad():
            assert torch.allclose(md(toks), mr(toks), atol=1e-12, rtol=0)
    # Sinusoidal table spot check.
    pe = tm.sinusoidal_table(4, 6)
    assert abs(pe[3, 2] - math.sin(3 / 10000 ** (2 / 6))) < 1e-15
    assert abs(pe[3, 3] - math.cos(3 / 10000 ** (2 / 6))) < 1e-15


def fd_check(model, tokens, targets, names, eps=1e-5):
    """Central differences on the largest-|grad| entry of each named param.
    Returns (worst relative error, all within tolerance, report lines).
    Tolerance: |fd - autograd| <= 1e-6 |autograd| + 1e-9 (roundoff of the
    float64 loss / eps is ~1e-10)."""
    worst = 0.0
    ok = True
    lines = []
    for name in names:
        p = model.param(name)
        g = p.grad.reshape(-1)
        idx = int(torch.argmax(g.abs()))
        with torch.no_grad():
            flat = p.data.view(-1)
            orig = flat[idx].item()
            flat[idx] = orig + eps
            lp = model.loss(tokens, targets)[1].item()
            flat[idx] = orig - eps
            lm = model.loss(tokens, targets)[1].item()
            flat[idx] = orig
        fd = (lp - lm) / (2 * eps)
        an = g[idx].item()
        rel = abs(fd - an) / max(abs(an), 1e-12)
        worst = max(worst, rel)
        ok &= abs(fd - an) <= 1e-6 * abs(an) + 1e-9
        lines.append("    fd %-28s[%5d] autograd % .9e  fd % .9e  rel %.1e" % (name, idx, an, fd, rel))
    return worst, ok, lines


def rotate_half_rope(x, cos, sin):
    """The WRONG (NeoX / rotate_half) pairing, used only to measure sensitivity."""
    hd = x.shape[-1]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2:]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    return torch.cat((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1)


@torch.no_grad()
def sensitivity(model, tokens):
    """Max |logits change| when the position scheme is done wrong."""
    c = model.cfg
    base = model(tokens)
    out = {}
    variants = {}
    if c["pos"] == "rope":
        variants["rotate_half"] = ("apply_rope", rotate_half_rope)
    if c["pos"] == "alibi":
        variants["reversed_slopes"] = ("alibi_slopes", lambda n, f=tm.alibi_slopes: f(n)[::-1])
    if c["pos"] == "sinusoidal":
        variants["sin_cos_swapped"] = (
            "sinusoidal_table",
            lambda T, D, f=tm.sinusoidal_table: f(T, D).reshape(T, D // 2, 2).flip(-1).reshape(T, D))
    for vname, (attr, fn) in variants.items():
        orig = getattr(tm, attr)
        setattr(tm, attr, fn)
        model._cache.clear()
        try:
            out[vname] = (model(tokens) - base).abs().max().item()
        finally:
            setattr(tm, attr, orig)
            model._cache.clear()
    if c["pos"] in ("rope", "alibi", "sinusoidal"):
        saved = c["pos"]
        c["pos"] = "none"
        model._cache.clear()
        out["no_pos"] = (model(tokens) - base).abs().max().item()
        c["pos"] = saved
        model._cache.clear()

    def with_key(key, value):
        saved = c.get(key)
        c[key] = value
        model._cache.clear()
        try:
            return (model(tokens) - base).abs().max().item()
        finally:
            c[key] = saved
            model._cache.clear()

    pats = c.get("patterns")
    if pats and any(p != "causal" for p in pats):
        out["all_causal"] = with_key("patterns", ["causal"] * len(pats))

        def off_by_one(p):  # a window one key wider, a BigBird window one block wider
            if p.startswith("window:"):
                return "window:%d" % (int(p[7:]) + 1)
            if p.startswith("bigbird:"):
                b, w, g, r = p[8:].split(",")
                return "bigbird:%s,%d,%s,%s" % (b, int(w) + 1, g, r)
            return p
        out["window_plus_one"] = with_key("patterns", [off_by_one(p) for p in pats])
        if any(p.startswith("bigbird:") for p in pats):
            out["no_global"] = with_key("patterns", [
                p if not p.startswith("bigbird:") else
                ",".join(p.split(",")[:2] + ["0"] + p.split(",")[3:]) for p in pats])
    if c.get("rope_scaling", "none") != "none" and c["pos"] == "rope":
        out["no_scaling"] = with_key("rope_scaling", "none")
    if "colt5" in c:  # the heavy outputs (and key/value inputs) not scaled by the routers' gates
        def ungated(which):
            model.ungated = which
            try:
                return (model(tokens) - base).abs().max().item()
            finally:
                model.ungated = False
        out["ungated"] = ungated(True)
        colt5 = tm.parse_colt5(c["colt5"])
        if colt5["attn"]:
            # each attention router's gate alone: on the heavy output (q), on its key/value input
            for r in ("q", "kv"):
                if colt5["attn"]["route_" + r] < 1:
                    out["ungated_attn_" + r] = ungated({"attn_router_" + r})
            if colt5["ffn"]:
                out["ungated_ffn"] = ungated({"ffn_router"})
            if tm.colt5_attn_heads(c)[0] > 0:  # the light heads' window one key wider
                w = colt5["attn"]["window"]
                out["light_window_plus_one"] = with_key(
                    "colt5", c["colt5"].replace("window:%d" % w, "window:%d" % (w + 1)))
    return out


# ---------------------------------------------------------------------------
def build_one(idx, name, c):
    seed = 1000 + idx
    seq_len = SEQ_LEN.get(name, T)
    model = tm.DecoderLM(c, dtype=torch.float64)
    model.init_weights(seed, qk_std=QK_STD)
    g = torch.Generator().manual_seed(seed + 500)
    V = c["vocab_size"]
    seq = torch.randint(0, V, (B, seq_len + 1), generator=g)
    seq[0, 0] = 0          # exercise both ends of the vocabulary
    seq[1, 3] = V - 1
    tokens, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()

    colt5 = tm.parse_colt5(c["colt5"]) if "colt5" in c else None
    if colt5:
        # Heavy matrices 2x the init (exact in float32), so the heavy branches and their gates
        # move the logits well above float32 noise (the "ungated" sensitivities below).
        heavy = []
        if colt5["ffn"]:
            heavy += ["ffn_%s.weight" % m for m in ("gate", "up", "down")]
        if colt5["attn"]:
            heavy += ["attn_%s.weight" % m for m in ("q", "k", "v", "output")]
        with torch.no_grad():
            for n, p in model.named_model_params():
                if any(n.endswith(m) for m in heavy):
                    p.mul_(2.0)
        # Thresholds in gaps of the scores, so float32 routes every token as float64 does.
        model.place_thresholds = True
        with torch.no_grad():
            model(tokens)
        model.place_thresholds = False
        model.min_margin = float("inf")
    logits, loss = model.loss(tokens, targets)
    loss.backward()
    margin = model.min_margin
    if colt5:
        # The thresholds' gradient: their moving average's (torch_model.py), from this forward.
        for n, _, kind in model.specs:
            if kind == "threshold":
                model.param(n).grad = torch.tensor([model.threshold_grad[n]], dtype=torch.float64)

    # FD on a spread of parameters.
    L = c["n_layers"]
    fd_names = ["token_embd.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
                "blk.0.attn_norm.weight", "blk.%d.ffn_down.weight" % (L - 1),
                "output_norm.weight"]
    if c["pos"] == "learned":
        fd_names.append("position_embd.weight")
    if c["bias"]:
        # (attn_k.bias has an exactly-zero gradient without RoPE: it shifts every
        # score of a query row by the same amount.)
        fd_names += ["blk.0.attn_q.bias", "blk.0.attn_v.bias", "blk.%d.ffn_down.bias" % (L - 1)]
        if c["pos"] == "rope":
            fd_names.append("blk.0.attn_k.bias")
    if c["bias"] and c["norm"] == "layernorm":
        fd_names.append("blk.0.ffn_norm.bias")
    if c["mlp"] == "swiglu":
        fd_names.append("blk.0.ffn_gate.weight")
    if colt5 and colt5["ffn"]:
        fd_names += ["blk.0.ffn_router.weight", "blk.%d.ffn_router.weight" % (L - 1)]
        if colt5["ffn"]["light"] > 0:
            fd_names.append("blk.0.ffn_light_up.weight")
    if colt5 and colt5["attn"]:
        names = {n for n, _, _ in model.specs}
        for l in range(L):
            for r in ("q", "kv"):
                if "blk.%d.attn_router_%s.weight" % (l, r) in names:
                    fd_names.append("blk.%d.attn_router_%s.weight" % (l, r))
        fd_names += ["blk.%d.attn_v.weight" % (L - 1), "blk.%d.attn_output.weight" % (L - 1)]
        for m in ("q", "k", "v", "output"):
            if "blk.0.attn_light_%s.weight" % m in names:
                fd_names.append("blk.0.attn_light_%s.weight" % m)
        if c["bias"]:
            fd_names += [n for n in ("blk.0.attn_output.bias", "blk.0.attn_light_v.bias",
                                     "blk.0.attn_light_output.bias") if n in names]
    worst, fd_ok, lines = fd_check(model, tokens, targets, fd_names)
    sens = sensitivity(model, tokens)

    # float32 replay of the same weights (same module the bench uses).
    m32 = tm.DecoderLM(c, dtype=torch.float32)
    with torch.no_grad():
        for n, p in model.named_model_params():
            m32.param(n).copy_(p.float())
    loss32 = m32.loss(tokens, targets)[1].item()

    meta = dict(batch=B, seq_len=seq_len, seed=seed,
                init="N(0,0.02) matrices+embeddings, 1+N(0,0.1) norm weights, N(0,0.02) biases, "
                     "N(0,%g) attn_q/attn_k weights; float64 draws rounded to float32" % QK_STD,
                generator="tests/golden/make_model_golden.py (torch %s, float64)" % torch.__version__)
    records = [rec_string("config", tm.config_json(c)),
               rec_string("meta", json.dumps(meta, sort_keys=True)),
               rec_tensor("tokens", tokens, DT_I32),
               rec_tensor("targets", targets, DT_I32),
               rec_tensor("loss", loss.detach().reshape(()), DT_F64),
               rec_tensor("logits", logits, DT_F32)]
    for n, p in model.named_model_params():
        records.append(rec_tensor(n, p, DT_F32))
    for n, p in model.named_model_params():
        records.append(rec_tensor(n + ".grad", p.grad, DT_F32))
    nparams = sum(p.numel() for _, p in model.named_model_params())
    if colt5:
        print("    %s: routed fractions %s, smallest |z - tau| %.3g" % (
            name, " ".join("%.3f" % v for v in model.routed_fraction.values()), margin))
        if colt5["attn"]:
            print("    routed: " + ", ".join("%s %.3f" % (n[:-len(".threshold")], v)
                                           for n, v in model.routed_fraction.items()))
            print("    heavy attention, per layer (routed queries, of them seeing no routed key, "
                  "routed keys): " + ", ".join("%s %d/%d/%d" % ((p.rstrip("."),) + v)
                                                for p, v in model.heavy_stats.items()))
        fd_ok &= margin > 1e-3
    return records, loss.item(), loss32, worst, fd_ok, lines, nparams, sens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--check-only", action="store_true", help="run the checks, write nothing")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every FD entry")
    ap.add_argument("--only", default="", help="comma-separated config names to build (default: all)")
    args = ap.parse_args()
    only = [n for n in args.only.split(",") if n]
    unknown = set(only) - {n for n, _ in CONFIGS}
    if unknown:
        sys.exit("unknown config(s): %s" % ", ".join(sorted(unknown)))

    torch.set_num_threads(1)
    check_conventions()
    print("conventions (alibi slopes, adjacent-pair rope, sinusoidal, dense-equivalent colt5 attention): ok")
    worst_all = 0.0
    failed = False
    written = 0
    for idx, (name, c) in enumerate(CONFIGS):
        if only and name not in only:
            continue
        records, loss, loss32, worst, fd_ok, lines, nparams, sens = build_one(idx, name, c)
        worst_all = max(worst_all, worst)
        path = os.path.join(args.out, "model_%s.bin" % name)
        size = sum(len(r) for r in records) + 12
        if not args.check_only:
            size = write_golden(path, records)
            written += 1
        ok = (fd_ok and size < MAX_BYTES and abs(loss - loss32) < 1e-4
              and all(v > 1e-2 for v in sens.values()))
        failed |= not ok
        print("%-15s pos=%-10s %-9s %-6s bias=%-5s tied=%-5s H=%d KVH=%d hd=%d D=%d L=%d "
              "params=%6d loss=%.10f (f32 %.7f) fd_worst_rel=%.1e size=%6d B %s"
              % (name, c["pos"], c["norm"], c["mlp"], c["bias"], c["tied_embeddings"],
                 c["heads"], c["kv_heads"], c["head_dim"], c["model_dim"], c["n_layers"],
                 nparams, loss, loss32, worst, size, "ok" if ok else "FAIL"))
        if "patterns" in c or "rope_scaling" in c:
            print("    patterns %s, rope_scaling %s, seq_len %d"
                  % (",".join(c.get("patterns", ["causal"])), c.get("rope_scaling", "none"),
                     SEQ_LEN.get(name, T)))
        if sens:
            print("    logits max|change| if done wrong: " +
                  ", ".join("%s %.3f" % kv for kv in sens.items()))
        if args.verbose or not ok:
            print("\n".join(lines))
    print("finite-difference worst relative error over all configs: %.2e" % worst_all)
    if failed:
        print("SELF-CHECK FAILED")
        sys.exit(1)
    print("wrote %d files to %s" % (written, args.out))


if __name__ == "__main__":
    main()
