"""Reference PyTorch implementation of the longctx decoder-only transformer.

Written from the model description (not from the C++ sources); used by
  tests/golden/make_model_golden.py  (float64, writes the golden files)
  bench/torch_train.py               (float32, training-throughput baseline)

Model: pre-norm decoder-only transformer.
Config keys (JSON): vocab_size V, model_dim D, n_layers L, heads H, kv_heads KVH
(divides H), head_dim hd, ff_dim F, ctx (max positions), norm ("layernorm" |
"rmsnorm"), norm_eps, mlp ("gelu" | "swiglu"), bias (bool), tied_embeddings
(bool), pos ("none" | "learned" | "sinusoidal" | "rope" | "alibi"), rope_theta.
Optional keys (absent = the default, and then not written by config_json, so
older configs serialise unchanged):
  patterns      list of n_layers strings, the attention mask of each layer
                (default: "causal" everywhere):
                  "causal"          key k visible to query q iff k <= q
                  "window:W"        iff k <= q and q - k < W
                  "bigbird:B,W,G,0" causal BigBird without random blocks: with
                                    i = q // B and j = k // B, iff k <= q and
                                    (i < G or j < G or i - W < j)
  colt5         CoLT5 (arXiv 2303.09752) in every layer: parts separated by ';',
                each "ffn=..." or "attn=..." (either or both; R, Rq, Rkv are
                fractions like 1/4 or 1).
                "ffn=light:L,heavy:FH,route:R", the routed feed-forward:
                  e += FFl(h) + gate * FFh(h),  h = ffn_norm(e)
                FFl: the MLP with hidden L (ffn_light_*; L = 0: absent); FFh: the
                MLP with hidden FH under the dense names (ffn_gate/up/down);
                z = h . u / |u| with u = ffn_router.weight [D];
                routed iff z > tau, tau = ffn_router.threshold [1];
                gate = sigmoid(z - tau) where routed, else 0. tau is a constant
                (no gradient) in the gate; its gradient is its moving average's,
                0.1 * (tau - q), q the batch's (1 - R) quantile of z (between
                the k-th and (k+1)-th largest over all B*T rows, k = round(R n)
                in [1, n - 1]), set by the caller (threshold_grad).
                "attn=window:W,light_heads:Hl,route_q:Rq,route_kv:Rkv" (defaults
                W 128, Hl H // 4, Rq 1/16, Rkv 1/8), the routed attention:
                  e += A_light(h) + gate_q * A_heavy(h, gate_kv * h),
                  h = attn_norm(e)
                Heads: Hh = H - Hl heavy ones; kv heads KVl = Hl, KVh = Hh when
                KVH == H, else (group g = H / KVH) KVh = KVH, KVl = Hl / g.
                A_light (Hl > 0; attn_light_q/k/v/output, shapes as the dense
                ones with Hl, KVl): attention with the mask "window:W" over all
                rows, RoPE / ALiBi as the dense attention (ALiBi slopes
                alibi_slopes(Hl)).
                Routers attn_router_q and attn_router_kv (.weight [D],
                .threshold [1]; absent when the fraction is 1, every row then
                routed with gate 1): the ffn router's rule (gates, threshold
                gradients) for Rq and Rkv.
                A_heavy (the dense names attn_q/k/v/output with Hh, KVh):
                q = attn_q(h), k = attn_k(gate_kv * h), v = attn_v(gate_kv * h)
                (the input rows scaled, then the linear with its bias); RoPE at
                the rows' positions; ALiBi slopes alibi_slopes(Hh), distance
                i - j; key j visible to query i iff j <= i and j is kv-routed;
                a query that sees no key has attention output 0 (its projection
                is the bias). Only q-routed rows get gate_q * attn_output(att).
  rope_scaling  "none" | "linear:F" | "yarn:F" | "yarn:F,ORIG" (default none;
                yarn without ORIG uses ctx). pos == rope only:
                  linear  angle_i = (pos / F) * freq_i
                  yarn    per pair i: wavelength = 2 pi / freq_i,
                          r = ORIG / wavelength,
                          gamma = clamp((r - 1) / (32 - 1), 0, 1),
                          freq'_i = (1 - gamma) freq_i / F + gamma freq_i,
                          cos and sin both multiplied by 0.1 ln(F) + 1

Parameter names / shapes (row-major, PyTorch Linear convention [out, in]):
  token_embd.weight [V, D]
  position_embd.weight [ctx, D]                     (pos == learned only)
  blk.{l}.attn_norm.weight [D] (+ .bias [D] when norm == layernorm and bias)
  blk.{l}.attn_q.weight [H*hd, D]    (+ .bias when bias)
  blk.{l}.attn_k.weight [KVH*hd, D]  (+ .bias when bias)
  blk.{l}.attn_v.weight [KVH*hd, D]  (+ .bias when bias)
  blk.{l}.attn_output.weight [D, H*hd] (+ .bias when bias)
  colt5 attn: attn_q/k/v/output with the heavy heads (Hh, KVh) then
          blk.{l}.attn_light_{q,k,v,output} with the light ones (Hl > 0), then
          blk.{l}.attn_router_q.{weight [D], threshold [1]} (Rq < 1) and
          blk.{l}.attn_router_kv.{weight, threshold} (Rkv < 1)
  blk.{l}.ffn_norm.weight [D] (+ .bias as attn_norm)
  gelu:   blk.{l}.ffn_up.weight [F, D], blk.{l}.ffn_down.weight [D, F]
  swiglu: blk.{l}.ffn_gate.weight [F, D], blk.{l}.ffn_up.weight [F, D],
          blk.{l}.ffn_down.weight [D, F]          (+ .bias each when bias)
  colt5 ffn: the heavy MLP (hidden FH) under these names, then ffn_light_*
          (hidden L, L > 0), then blk.{l}.ffn_router.weight [D],
          blk.{l}.ffn_router.threshold [1]
  output_norm.weight [D] (+ .bias as attn_norm)
  output.weight [V, D]                              (untied only)

Conventions worth stating explicitly:
  * RoPE rotates ADJACENT pairs (x[2i], x[2i+1]) by angle pos * theta^(-2i/hd)
    (GPT-J / llama.cpp "normal" mode, not rotate_half); applied to q and k
    after their biases.
  * Sinusoidal PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(same).
  * ALiBi: scores[h, i, j] += -slope[h] * (i - j); slopes from the ALiBi paper
    (non power-of-two H: slopes(n) + slopes(2n)[0::2][:H-n], n = 2^floor(log2 H)).
  * GQA: query head h reads kv head h // (H / KVH).
  * GELU is the exact erf form; layernorm uses the biased variance.
  * loss = mean cross-entropy over all B*T positions.
"""

import json
import math

import torch
import torch.nn.functional as F

DEFAULT_CONFIG = {
    "norm_eps": 1e-5,
    "rope_theta": 10000.0,
}

POS_KINDS = ("none", "learned", "sinusoidal", "rope", "alibi")


def _ints(text, what):
    try:
        vals = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError("bad %s %r" % (what, text))
    return vals


def parse_pattern(spec):
    """'causal' | 'window:W' | 'bigbird:B,W,G,0' -> (kind, params tuple)."""
    if spec == "causal":
        return ("causal", ())
    if spec.startswith("window:"):
        (w,) = _ints(spec[len("window:"):], "window pattern")
        if w < 1:
            raise ValueError("window must be >= 1 in %r" % spec)
        return ("window", (w,))
    if spec.startswith("bigbird:"):
        vals = _ints(spec[len("bigbird:"):], "bigbird pattern")
        if len(vals) != 4:
            raise ValueError("bigbird needs B,W,G,R in %r" % spec)
        blk, win, glob, rnd = vals
        if blk < 1 or win < 1 or glob < 0:
            raise ValueError("bad bigbird sizes in %r" % spec)
        if rnd != 0:
            raise ValueError("the reference has no random blocks (R must be 0) in %r" % spec)
        return ("bigbird", (blk, win, glob))
    raise ValueError("unknown attention pattern %r" % spec)


def pattern_mask(spec, T):
    """Bool [T, T], True where key k (column) is HIDDEN from query q (row)."""
    kind, a = parse_pattern(spec)
    q = torch.arange(T)[:, None]
    k = torch.arange(T)[None, :]
    visible = k <= q
    if kind == "window":
        visible = visible & (q - k < a[0])
    elif kind == "bigbird":
        blk, win, glob = a
        qb, kb = q // blk, k // blk
        # own block and the win - 1 blocks before it; the first glob key blocks;
        # global query blocks see every (earlier) key.
        visible = visible & ((kb > qb - win) | (kb < glob) | (qb < glob))
    return ~visible


def parse_rope_scaling(spec, ctx):
    """-> (kind, factor, original_ctx); kind in none | linear | yarn."""
    if spec == "none":
        return ("none", 1.0, 0)
    kind, _, rest = spec.partition(":")
    if kind not in ("linear", "yarn") or not rest:
        raise ValueError("bad rope_scaling %r (none, linear:F, yarn:F[,ORIG])" % spec)
    parts = rest.split(",")
    factor = float(parts[0])
    if not (math.isfinite(factor) and factor >= 1.0):
        raise ValueError("rope_scaling factor must be >= 1 in %r" % spec)
    if kind == "linear":
        if len(parts) != 1:
            raise ValueError("linear takes one number in %r" % spec)
        return ("linear", factor, 0)
    if len(parts) > 2:
        raise ValueError("yarn takes F or F,ORIG in %r" % spec)
    orig = int(parts[1]) if len(parts) == 2 else int(ctx)
    if not 1 <= orig <= ctx:
        raise ValueError("yarn original context must be in [1, ctx] in %r" % spec)
    return ("yarn", factor, orig)


def _fraction(text, what):
    num, _, den = text.partition("/")
    try:
        f = float(num) / float(den) if den else float(num)
    except (ValueError, ZeroDivisionError):
        raise ValueError("bad %s %r" % (what, text))
    if not 0.0 < f <= 1.0:
        raise ValueError("%s must be in (0, 1], got %r" % (what, text))
    return f


def parse_colt5(spec):
    """'ffn=light:L,heavy:FH,route:R;attn=window:W,light_heads:Hl,route_q:Rq,route_kv:Rkv'
    (parts in any order, either may be absent) -> dict(ffn=dict(light, heavy, route) | None,
    attn=dict(window, light_heads, route_q, route_kv) | None); light_heads -1 means H // 4."""
    out = {"ffn": None, "attn": None}
    for part in spec.split(";"):
        if not part:
            continue
        name, _, args = part.partition("=")
        if name not in out:
            raise ValueError("colt5: unknown part %r (known: ffn, attn) in %r" % (name, spec))
        if out[name] is not None:
            raise ValueError("colt5: part %r twice in %r" % (name, spec))
        if name == "ffn":
            keys, d = ("light", "heavy", "route"), {}
        else:
            keys = ("window", "light_heads", "route_q", "route_kv")
            d = {"window": 128, "light_heads": -1, "route_q": 1.0 / 16, "route_kv": 1.0 / 8}
        for kv in (args.split(",") if args else []):
            k, _, v = kv.partition(":")
            if k not in keys:
                raise ValueError("colt5 %s: unknown key %r in %r" % (name, k, spec))
            if k.startswith("route"):
                d[k] = _fraction(v, k)
                continue
            try:
                d[k] = int(v)
            except ValueError:
                raise ValueError("colt5 %s: bad %s %r" % (name, k, v))
            if d[k] < (1 if k == "window" else 0):
                raise ValueError("colt5 %s: %s must be >= %d in %r" % (name, k, k == "window", spec))
        if name == "ffn" and set(d) != set(keys):
            raise ValueError("colt5 ffn needs light, heavy and route in %r" % spec)
        out[name] = d
    if out["ffn"] is None and out["attn"] is None:
        raise ValueError("colt5: %r names no part" % spec)
    return out


def colt5_attn_heads(c):
    """-> (Hl, KVl, Hh, KVh) of the routed attention of full config c (None without it)."""
    if "colt5" not in c:
        return None
    a = parse_colt5(c["colt5"])["attn"]
    if a is None:
        return None
    H, KVH = c["heads"], c["kv_heads"]
    hl = H // 4 if a["light_heads"] < 0 else a["light_heads"]
    if hl >= H:
        raise ValueError("colt5 attn: light_heads %d leaves no heavy head of %d" % (hl, H))
    hh = H - hl
    if KVH == H:
        return hl, hl, hh, hh
    g = H // KVH
    if hh % KVH != 0 or hl % g != 0:
        raise ValueError("colt5 attn: light_heads must be a multiple of %d leaving a multiple of %d "
                         "heavy heads" % (g, KVH))
    return hl, hl // g, hh, KVH


def layer_patterns(cfg):
    return list(cfg.get("patterns", ["causal"] * cfg["n_layers"]))


def full_config(cfg):
    out = dict(DEFAULT_CONFIG)
    out.update(cfg)
    required = ["vocab_size", "model_dim", "n_layers", "heads", "kv_heads", "head_dim",
                "ff_dim", "ctx", "norm", "mlp", "bias", "tied_embeddings", "pos"]
    for k in required:
        if k not in out:
            raise ValueError("config is missing key %r" % k)
    if out["norm"] not in ("layernorm", "rmsnorm"):
        raise ValueError("bad norm %r" % out["norm"])
    if out["mlp"] not in ("gelu", "swiglu"):
        raise ValueError("bad mlp %r" % out["mlp"])
    if out["pos"] not in POS_KINDS:
        raise ValueError("bad pos %r" % out["pos"])
    if out["heads"] % out["kv_heads"] != 0:
        raise ValueError("kv_heads must divide heads")
    if out["pos"] == "rope" and out["head_dim"] % 2 != 0:
        raise ValueError("rope needs an even head_dim")
    if out["pos"] == "sinusoidal" and out["model_dim"] % 2 != 0:
        raise ValueError("sinusoidal needs an even model_dim")
    if "patterns" in out:
        if len(out["patterns"]) != out["n_layers"]:
            raise ValueError("patterns needs one entry per layer")
        for spec in out["patterns"]:
            parse_pattern(spec)
    if "colt5" in out:
        parse_colt5(out["colt5"])
        if colt5_attn_heads(out) is not None and any(p != "causal" for p in layer_patterns(out)):
            raise ValueError("colt5 attn brings its own masks: every pattern must be causal")
    if "rope_scaling" in out:
        kind = parse_rope_scaling(out["rope_scaling"], out["ctx"])[0]
        if kind != "none" and out["pos"] != "rope":
            raise ValueError("rope_scaling needs pos == rope")
    return out


def param_specs(cfg):
    """Ordered list of (name, shape, kind); kind in matrix|embedding|norm|bias."""
    c = full_config(cfg)
    V, D, L = c["vocab_size"], c["model_dim"], c["n_layers"]
    H, KVH, hd, Fd = c["heads"], c["kv_heads"], c["head_dim"], c["ff_dim"]
    bias = bool(c["bias"])
    norm_bias = bias and c["norm"] == "layernorm"
    specs = [("token_embd.weight", (V, D), "embedding")]
    if c["pos"] == "learned":
        specs.append(("position_embd.weight", (c["ctx"], D), "embedding"))

    def norm(name):
        specs.append((name + ".weight", (D,), "norm"))
        if norm_bias:
            specs.append((name + ".bias", (D,), "bias"))

    def linear(name, out_f, in_f):
        specs.append((name + ".weight", (out_f, in_f), "matrix"))
        if bias:
            specs.append((name + ".bias", (out_f,), "bias"))

    colt5 = parse_colt5(c["colt5"]) if "colt5" in c else {"ffn": None, "attn": None}
    attn_heads = colt5_attn_heads(c)
    for l in range(L):
        p = "blk.%d." % l
        norm(p + "attn_norm")
        # (the order routed_attention.cc declares its tensors in)
        hq, hkv = (attn_heads[2], attn_heads[3]) if attn_heads else (H, KVH)
        linear(p + "attn_q", hq * hd, D)
        linear(p + "attn_k", hkv * hd, D)
        linear(p + "attn_v", hkv * hd, D)
        linear(p + "attn_output", D, hq * hd)
        if attn_heads:
            hl, kvl = attn_heads[0], attn_heads[1]
            if hl > 0:
                linear(p + "attn_light_q", hl * hd, D)
                linear(p + "attn_light_k", kvl * hd, D)
                linear(p + "attn_light_v", kvl * hd, D)
                linear(p + "attn_light_output", D, hl * hd)
            for r in ("q", "kv"):
                if colt5["attn"]["route_" + r] < 1.0:
                    specs.append((p + "attn_router_%s.weight" % r, (D,), "router"))
                    specs.append((p + "attn_router_%s.threshold" % r, (1,), "threshold"))
        norm(p + "ffn_norm")
        ffn = colt5["ffn"]
        heavy = ffn["heavy"] if ffn else Fd
        for prefix, hidden in [(p + "ffn_", heavy)] + ([(p + "ffn_light_", ffn["light"])]
                                                       if ffn and ffn["light"] > 0 else []):
            if c["mlp"] == "swiglu":
                linear(prefix + "gate", hidden, D)
            linear(prefix + "up", hidden, D)
            linear(prefix + "down", D, hidden)
        if ffn:
            specs.append((p + "ffn_router.weight", (D,), "router"))
            specs.append((p + "ffn_router.threshold", (1,), "threshold"))
    norm("output_norm")
    if not c["tied_embeddings"]:
        specs.append(("output.weight", (V, D), "matrix"))
    return specs


def alibi_slopes(n):
    """Head slopes from the ALiBi paper (press et al.), incl. non power-of-two n."""
    def pow2_slopes(m):
        # 2^(-8 (h+1) / m)
        return [2.0 ** (-8.0 * (h + 1) / m) for h in range(m)]

    if n <= 0:
        return []
    if (n & (n - 1)) == 0:
        return pow2_slopes(n)
    closest = 2 ** int(math.floor(math.log2(n)))
    return pow2_slopes(closest) + pow2_slopes(2 * closest)[0::2][: n - closest]


def sinusoidal_table(T, D):
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    i2 = torch.arange(0, D, 2, dtype=torch.float64)[None, :]
    ang = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), i2 / D)
    pe = torch.zeros(T, D, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(ang)
    pe[:, 1::2] = torch.cos(ang)
    return pe


def rope_tables(T, hd, theta, scaling=("none", 1.0, 0)):
    """cos, sin [T, hd/2]; scaling = parse_rope_scaling(...)."""
    kind, factor, orig = scaling
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    i = torch.arange(hd // 2, dtype=torch.float64)[None, :]
    freq = torch.pow(torch.tensor(float(theta), dtype=torch.float64), -2.0 * i / hd)
    mag = 1.0
    if kind == "linear":
        pos = pos / factor  # position interpolation
    elif kind == "yarn":
        wavelength = 2.0 * math.pi / freq
        r = orig / wavelength  # turns over the original context
        gamma = torch.clamp((r - 1.0) / (32.0 - 1.0), 0.0, 1.0)
        freq = (1.0 - gamma) * freq / factor + gamma * freq
        mag = 0.1 * math.log(factor) + 1.0
    ang = pos * freq
    return mag * torch.cos(ang), mag * torch.sin(ang)


def apply_rope(x, cos, sin):
    """x [B, T, nh, hd]; rotates adjacent pairs (x[2i], x[2i+1])."""
    B, T, nh, hd = x.shape
    xp = x.reshape(B, T, nh, hd // 2, 2)
    x0, x1 = xp[..., 0], xp[..., 1]
    c = cos[None, :, None, :]
    s = sin[None, :, None, :]
    r0 = x0 * c - x1 * s
    r1 = x0 * s + x1 * c
    return torch.stack((r0, r1), dim=-1).reshape(B, T, nh, hd)


class DecoderLM(torch.nn.Module):
    def __init__(self, cfg, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.cfg = full_config(cfg)
        self.specs = param_specs(self.cfg)
        self._by_name = {}
        for name, shape, _ in self.specs:
            p = torch.nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
            self.register_parameter(name.replace(".", "__"), p)
            self._by_name[name] = p
        self._cache = {}
        # Attention through torch's fused scaled_dot_product_attention (benchmarks: PyTorch's
        # fastest path) instead of the explicit softmax; causal layers take is_causal=True (its
        # flash kernel), other patterns their boolean mask.
        self.sdpa = False
        # CoLT5 checks (tests/golden/make_model_golden.py): place_thresholds makes the next
        # forward set every router's threshold in the middle of the widest gap of its scores
        # near the target quantile (so float32 and float64 route alike) and records the
        # smallest |z - tau|; ungated replaces gates by the routed indicator (1 on routed rows):
        # False, True (every router) or a set of router names among "ffn_router",
        # "attn_router_q" (the heavy attention's output) and "attn_router_kv" (its key/value
        # input). routed_fraction and threshold_grad are keyed by the threshold's name
        # (e.g. "blk.0.attn_router_kv.threshold").
        self.place_thresholds = False
        self.min_margin = float("inf")
        self.routed_fraction = {}
        self.threshold_grad = {}
        self.ungated = False
        self.heavy_stats = {}  # CoLT5 attention per layer: (routed queries, of them seeing no key, routed keys)

    # ---- parameters -------------------------------------------------------
    def named_model_params(self):
        """(longctx name, parameter) in spec order."""
        return [(name, self._by_name[name]) for name, _, _ in self.specs]

    def param(self, name):
        return self._by_name[name]

    def param_kind(self, name):
        for n, _, k in self.specs:
            if n == name:
                return k
        raise KeyError(name)

    @torch.no_grad()
    def init_weights(self, seed, round_to_float32=True, qk_std=0.02):
        """N(0, 0.02) matrices/embeddings, 1 + N(0, 0.1) norm weights, N(0, 0.02)
        biases. Drawn in float64 from a seeded generator (identical for any model
        dtype); rounded to float32 first so float32 copies are exact.
        qk_std overrides the std of attn_q/attn_k weights (and CoLT5's attn_light_q/k; the golden files use a
        larger value so attention is far from uniform and position encodings
        matter for the logits)."""
        g = torch.Generator().manual_seed(seed)
        for name, shape, kind in self.specs:
            w = torch.randn(shape, generator=g, dtype=torch.float64)
            if kind == "norm":
                w = 1.0 + 0.1 * w
            elif kind == "matrix" and name.endswith(("attn_q.weight", "attn_k.weight",
                                                     "attn_light_q.weight", "attn_light_k.weight")):
                w = qk_std * w
            else:
                w = 0.02 * w
            if round_to_float32:
                w = w.float().double()
            p = self._by_name[name]
            p.copy_(w.to(dtype=p.dtype, device=p.device))

    # ---- forward ----------------------------------------------------------
    def _tables(self, T, dtype, device):
        key = (T, dtype, str(device))
        t = self._cache.get(key)
        if t is not None:
            return t
        c = self.cfg
        t = {"masks": [pattern_mask(spec, T).to(device=device) for spec in layer_patterns(c)]}
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1).to(device=device)
        t["plain_causal"] = [bool(torch.equal(m, causal)) for m in t["masks"]]
        if c["pos"] == "sinusoidal":
            t["pe"] = sinusoidal_table(T, c["model_dim"]).to(dtype=dtype, device=device)
        if c["pos"] == "rope":
            scaling = parse_rope_scaling(c.get("rope_scaling", "none"), c["ctx"])
            cos, sin = rope_tables(T, c["head_dim"], c["rope_theta"], scaling)
            t["cos"] = cos.to(dtype=dtype, device=device)
            t["sin"] = sin.to(dtype=dtype, device=device)
        if c["pos"] == "alibi":
            i = torch.arange(T, dtype=torch.float64)
            dist = i[:, None] - i[None, :]  # i - j

            def alibi(n):
                slopes = torch.tensor(alibi_slopes(n), dtype=torch.float64)
                return (-slopes[:, None, None] * dist[None]).to(dtype=dtype, device=device)
            t["alibi"] = alibi(c["heads"])
            heads = colt5_attn_heads(c)
            if heads:  # CoLT5 attention: each branch its own heads' slopes
                t["alibi_light"] = alibi(heads[0]) if heads[0] > 0 else None
                t["alibi_heavy"] = alibi(heads[2])
        self._cache[key] = t
        return t

    def _norm(self, x, prefix):
        c = self.cfg
        w = self._by_name[prefix + ".weight"]
        b = self._by_name.get(prefix + ".bias")
        if c["norm"] == "layernorm":
            return F.layer_norm(x, (x.shape[-1],), w, b, c["norm_eps"])
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + c["norm_eps"]) * w

    def _linear(self, x, prefix):
        return F.linear(x, self._by_name[prefix + ".weight"], self._by_name.get(prefix + ".bias"))

    def _mlp(self, h, prefix):
        if self.cfg["mlp"] == "gelu":
            # tanh-form GELU (GPT-2), as longctx computes it
            y = F.gelu(self._linear(h, prefix + "up"), approximate="tanh")
        else:
            y = F.silu(self._linear(h, prefix + "gate")) * self._linear(h, prefix + "up")
        return self._linear(y, prefix + "down")

    def _route(self, h, name, fraction):
        """CoLT5 router `name` (e.g. 'blk.0.ffn_router') over h [B, T, D] for the target
        fraction -> (gate, routed) [B, T]; gate = sigmoid(z - tau) on routed rows, 0 elsewhere
        (the routed indicator instead where ungated). Fraction 1: no router, all rows, gate 1."""
        if fraction >= 1.0:
            ones = torch.ones(h.shape[:-1], dtype=h.dtype, device=h.device)
            return ones, ones
        u = self._by_name[name + ".weight"]
        tau = self._by_name[name + ".threshold"]
        z = torch.matmul(h, u) / torch.linalg.vector_norm(u)  # [B, T]
        if self.place_thresholds:
            with torch.no_grad():
                zs = torch.sort(z.detach().reshape(-1), descending=True).values
                k = max(1, int(round(fraction * zs.numel())))
                lo, hi = max(0, k - 3), min(zs.numel() - 1, k + 2)
                best = max(range(lo, hi), key=lambda i: float(zs[i] - zs[i + 1]))
                tau.copy_(((zs[best] + zs[best + 1]) / 2).float().double().reshape(1))
        t = tau.detach()
        self.min_margin = min(self.min_margin, float((z.detach() - t).abs().min()))
        routed = (z.detach() > t).to(h.dtype)
        self.routed_fraction[name + ".threshold"] = float(routed.mean())
        zs = torch.sort(z.detach().reshape(-1), descending=True).values
        k = min(max(int(math.floor(fraction * zs.numel() + 0.5)), 1), zs.numel() - 1)
        self.threshold_grad[name + ".threshold"] = 0.1 * (float(t) - float(zs[k - 1] + zs[k]) / 2)
        ungated = self.ungated is True or (self.ungated and name.rsplit(".", 1)[-1] in self.ungated)
        gate = routed if ungated else torch.sigmoid(z - t) * routed
        return gate, routed

    def _routed_ffn(self, h, p):
        """CoLT5 feed-forward branch (dense heavy MLP times a gate that is 0 off the routed rows)."""
        colt5 = parse_colt5(self.cfg["colt5"])["ffn"]
        out = self._mlp(h, p + "ffn_light_") if colt5["light"] > 0 else torch.zeros_like(h)
        gate, _ = self._route(h, p + "ffn_router", colt5["route"])
        return out + gate[..., None] * self._mlp(h, p + "ffn_")

    def _attention(self, hq, hkv, prefix, nh, nkv, mask, alibi, tb):
        """Attention of hq's queries over hkv's keys/values through the linears `prefix`{q,k,v}
        (nh query heads, nkv kv heads), mask [B or 1, T, T] True where hidden, alibi [nh, T, T]
        or None; a query row that sees no key gets 0 -> [B, T, nh * hd] (before the output)."""
        c = self.cfg
        B, T, _ = hq.shape
        hd = c["head_dim"]
        q = self._linear(hq, prefix + "q").view(B, T, nh, hd)
        k = self._linear(hkv, prefix + "k").view(B, T, nkv, hd)
        v = self._linear(hkv, prefix + "v").view(B, T, nkv, hd)
        if c["pos"] == "rope":
            q = apply_rope(q, tb["cos"], tb["sin"])
            k = apply_rope(k, tb["cos"], tb["sin"])
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if nkv != nh:
            k = k.repeat_interleave(nh // nkv, dim=1)  # head h -> kv head h // (nh / nkv)
            v = v.repeat_interleave(nh // nkv, dim=1)
        s = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(hd)  # [B, nh, T, T]
        if alibi is not None:
            s = s + alibi[None]
        hidden = mask[:, None]  # [B, 1, T, T]
        sees = ~hidden.all(dim=-1, keepdim=True)  # query rows with a visible key
        s = s.masked_fill(hidden, float("-inf")).masked_fill(~sees, 0.0)
        pr = torch.softmax(s, dim=-1) * sees.to(s.dtype)
        return torch.matmul(pr, v).transpose(1, 2).reshape(B, T, nh * hd)

    def _routed_attn(self, h, p, tb):
        """CoLT5 attention (light local heads + routed heavy heads) -> what e gets added."""
        c = self.cfg
        a = parse_colt5(c["colt5"])["attn"]
        hl, kvl, hh, kvh = colt5_attn_heads(c)
        B, T, _ = h.shape
        out = torch.zeros_like(h)
        alibi = c["pos"] == "alibi"
        if hl > 0:
            win = pattern_mask("window:%d" % a["window"], T).to(device=h.device)[None]
            att = self._attention(h, h, p + "attn_light_", hl, kvl, win,
                                  tb["alibi_light"] if alibi else None, tb)
            out = out + self._linear(att, p + "attn_light_output")
        gate_q, _ = self._route(h, p + "attn_router_q", a["route_q"])
        gate_kv, routed_kv = self._route(h, p + "attn_router_kv", a["route_kv"])
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=h.device), diagonal=1)
        hidden = causal[None] | (routed_kv == 0)[:, None, :]  # [B, T(query), T(key)]
        gq = gate_q.detach() != 0
        self.heavy_stats[p] = (int(gq.sum()), int((gq & hidden.all(dim=-1)).sum()), int(routed_kv.sum()))
        att = self._attention(h, gate_kv[..., None] * h, p + "attn_", hh, kvh, hidden,
                              tb["alibi_heavy"] if alibi else None, tb)
        return out + gate_q[..., None] * self._linear(att, p + "attn_output")

    def forward(self, tokens):
        """tokens: int64 [B, T] -> logits [B, T, V]."""
        c = self.cfg
        B, T = tokens.shape
        if T > c["ctx"]:
            raise ValueError("sequence longer than ctx")
        H, KVH, hd = c["heads"], c["kv_heads"], c["head_dim"]
        wte = self._by_name["token_embd.weight"]
        tb = self._tables(T, wte.dtype, wte.device)

        e = F.embedding(tokens, wte)
        if c["pos"] == "learned":
            e = e + self._by_name["position_embd.weight"][:T][None]
        elif c["pos"] == "sinusoidal":
            # Token embeddings scaled by sqrt(model_dim) under sinusoidal positions (Vaswani et
            # al. 2017, section 3.4), so the table does not drown the tokens.
            e = e * math.sqrt(c["model_dim"]) + tb["pe"][None]

        scale = 1.0 / math.sqrt(hd)
        colt5 = parse_colt5(c["colt5"]) if "colt5" in c else {"ffn": None, "attn": None}
        for l in range(c["n_layers"]):
            p = "blk.%d." % l
            h = self._norm(e, p + "attn_norm")
            if colt5["attn"]:
                e = e + self._routed_attn(h, p, tb)
                h2 = self._norm(e, p + "ffn_norm")
                e = e + (self._routed_ffn(h2, p) if colt5["ffn"] else self._mlp(h2, p + "ffn_"))
                continue
            q = self._linear(h, p + "attn_q").view(B, T, H, hd)
            k = self._linear(h, p + "attn_k").view(B, T, KVH, hd)
            v = self._linear(h, p + "attn_v").view(B, T, KVH, hd)
            if c["pos"] == "rope":
                q = apply_rope(q, tb["cos"], tb["sin"])
                k = apply_rope(k, tb["cos"], tb["sin"])
            q = q.transpose(1, 2)  # [B, H, T, hd]
            k = k.transpose(1, 2)  # [B, KVH, T, hd]
            v = v.transpose(1, 2)
            if KVH != H:
                k = k.repeat_interleave(H // KVH, dim=1)  # head h -> kv head h // (H/KVH)
                v = v.repeat_interleave(H // KVH, dim=1)
            if self.sdpa and c["pos"] != "alibi":
                if tb["plain_causal"][l]:
                    a = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
                else:
                    a = F.scaled_dot_product_attention(q, k, v, attn_mask=~tb["masks"][l], scale=scale)
                a = a.transpose(1, 2).reshape(B, T, H * hd)
            else:
                s = torch.matmul(q, k.transpose(-1, -2)) * scale  # [B, H, T, T]
                if c["pos"] == "alibi":
                    s = s + tb["alibi"][None]
                s = s.masked_fill(tb["masks"][l], float("-inf"))
                pr = torch.softmax(s, dim=-1)
                a = torch.matmul(pr, v).transpose(1, 2).reshape(B, T, H * hd)
            e = e + self._linear(a, p + "attn_output")

            h2 = self._norm(e, p + "ffn_norm")
            if colt5["ffn"]:
                e = e + self._routed_ffn(h2, p)
            else:
                e = e + self._mlp(h2, p + "ffn_")

        hf = self._norm(e, "output_norm")
        wout = wte if c["tied_embeddings"] else self._by_name["output.weight"]
        return F.linear(hf, wout)

    def loss(self, tokens, targets):
        logits = self.forward(tokens)
        V = logits.shape[-1]
        return logits, F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))


def config_json(cfg):
    return json.dumps(full_config(cfg), sort_keys=True)
