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
  colt5         "ffn=light:L,heavy:FH,route:R" (CoLT5's routed feed-forward in
                every layer, R a fraction like 1/4): the feed-forward becomes
                  e += FFl(h) + gate * FFh(h),  h = ffn_norm(e)
                FFl: the MLP with hidden L (ffn_light_*; L = 0: absent); FFh: the
                MLP with hidden FH under the dense names (ffn_gate/up/down);
                z = h . u / |u| with u = ffn_router.weight [D];
                routed iff z > tau, tau = ffn_router.threshold [1];
                gate = sigmoid(z - tau) where routed, else 0. tau is a constant
                (no gradient) in the gate; its gradient is its moving average's,
                0.1 * (tau - q), q the batch's (1 - R) quantile of z (between
                the k-th and (k+1)-th largest, k = round(R n) in [1, n - 1]),
                set by the caller (threshold_grad).
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
  blk.{l}.ffn_norm.weight [D] (+ .bias as attn_norm)
  gelu:   blk.{l}.ffn_up.weight [F, D], blk.{l}.ffn_down.weight [D, F]
  swiglu: blk.{l}.ffn_gate.weight [F, D], blk.{l}.ffn_up.weight [F, D],
          blk.{l}.ffn_down.weight [D, F]          (+ .bias each when bias)
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


def parse_colt5(spec):
    """'ffn=light:L,heavy:FH,route:R' -> dict(light, heavy, route)."""
    part, _, args = spec.partition("=")
    if part != "ffn":
        raise ValueError("colt5: only the ffn part is modelled, got %r" % spec)
    out = {}
    for kv in args.split(","):
        k, _, v = kv.partition(":")
        if k == "route":
            num, _, den = v.partition("/")
            out[k] = float(num) / float(den) if den else float(num)
        else:
            out[k] = int(v)
    return out


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

    for l in range(L):
        p = "blk.%d." % l
        norm(p + "attn_norm")
        linear(p + "attn_q", H * hd, D)
        linear(p + "attn_k", KVH * hd, D)
        linear(p + "attn_v", KVH * hd, D)
        linear(p + "attn_output", D, H * hd)
        norm(p + "ffn_norm")
        colt5 = parse_colt5(c["colt5"]) if "colt5" in c else None
        heavy = colt5["heavy"] if colt5 else Fd
        for prefix, hidden in [(p + "ffn_", heavy)] + ([(p + "ffn_light_", colt5["light"])]
                                                       if colt5 and colt5["light"] > 0 else []):
            if c["mlp"] == "swiglu":
                linear(prefix + "gate", hidden, D)
            linear(prefix + "up", hidden, D)
            linear(prefix + "down", D, hidden)
        if colt5:
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
        # smallest |z - tau|; ungated scales the heavy output by 1 instead of the gate.
        self.place_thresholds = False
        self.min_margin = float("inf")
        self.routed_fraction = {}
        self.threshold_grad = {}
        self.ungated = False

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
        qk_std overrides the std of attn_q/attn_k weights (the golden files use a
        larger value so attention is far from uniform and position encodings
        matter for the logits)."""
        g = torch.Generator().manual_seed(seed)
        for name, shape, kind in self.specs:
            w = torch.randn(shape, generator=g, dtype=torch.float64)
            if kind == "norm":
                w = 1.0 + 0.1 * w
            elif kind == "matrix" and (name.endswith("attn_q.weight") or name.endswith("attn_k.weight")):
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
            slopes = torch.tensor(alibi_slopes(c["heads"]), dtype=torch.float64)
            i = torch.arange(T, dtype=torch.float64)
            dist = i[:, None] - i[None, :]  # i - j
            t["alibi"] = (-slopes[:, None, None] * dist[None]).to(dtype=dtype, device=device)
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

    def _routed_ffn(self, h, p):
        """CoLT5 feed-forward branch (dense heavy MLP times a gate that is 0 off the routed rows)."""
        colt5 = parse_colt5(self.cfg["colt5"])
        out = self._mlp(h, p + "ffn_light_") if colt5["light"] > 0 else torch.zeros_like(h)
        u = self._by_name[p + "ffn_router.weight"]
        tau = self._by_name[p + "ffn_router.threshold"]
        z = torch.matmul(h, u) / torch.linalg.vector_norm(u)  # [B, T]
        if self.place_thresholds:
            with torch.no_grad():
                zs = torch.sort(z.detach().reshape(-1), descending=True).values
                k = max(1, int(round(colt5["route"] * zs.numel())))
                lo, hi = max(0, k - 3), min(zs.numel() - 1, k + 2)
                best = max(range(lo, hi), key=lambda i: float(zs[i] - zs[i + 1]))
                tau.copy_(((zs[best] + zs[best + 1]) / 2).float().double().reshape(1))
        t = tau.detach()
        self.min_margin = min(self.min_margin, float((z.detach() - t).abs().min()))
        routed = (z.detach() > t).to(h.dtype)
        self.routed_fraction[p] = float(routed.mean())
        zs = torch.sort(z.detach().reshape(-1), descending=True).values
        k = min(max(int(math.floor(colt5["route"] * zs.numel() + 0.5)), 1), zs.numel() - 1)
        self.threshold_grad[p] = 0.1 * (float(t) - float(zs[k - 1] + zs[k]) / 2)
        gate = routed if self.ungated else torch.sigmoid(z - t) * routed
        return out + gate[..., None] * self._mlp(h, p + "ffn_")

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
        for l in range(c["n_layers"]):
            p = "blk.%d." % l
            h = self._norm(e, p + "attn_norm")
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
            if "colt5" in c:
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
