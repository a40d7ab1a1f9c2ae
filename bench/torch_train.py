#!/usr/bin/python3
"""PyTorch side of the training-throughput benchmark.

Trains the reference longctx model (tests/golden/torch_model.py, the same module
that writes the golden files) in float32 (or with --bf16: bf16 autocast, fp32
weights and optimizer; --sdpa: fused attention) with torch.optim.AdamW and prints
one JSON line:
  {"impl": "pytorch", "preset": ..., "threads": T, "batch": B, "ctx": T,
   "tokens_per_s": ..., "step_ms": ..., "steps": N, "final_loss": ...}
Only the --steps steps after --warmup warmup steps are timed; a step is: sample
a batch, forward, mean cross-entropy, backward, clip grad norm to 1.0,
AdamW step (lr 3e-4, betas (0.9, 0.95), weight decay 0.1 on 2-D weights --
attention/FFN matrices and the embeddings -- none on norms and biases).
tokens_per_s = batch * ctx * steps / timed seconds.

Data: random token ids, or --tokens FILE (raw little-endian int32 ids) from
which random windows of ctx + 1 tokens are drawn.

Presets (pre-norm, layernorm, GELU, biases, tied embeddings, learned positions):
  small: 6 layers, D=384, H=6, KVH=6, hd=64, F=1536, V=8192, ctx 256
  tiny:  4 layers, D=256, H=4, KVH=4, hd=64, F=1024, V=4096, ctx 256
--ctx sets both the training sequence length and the model's ctx.

Example: /usr/bin/python3 bench/torch_train.py --preset small --steps 5 --threads 2
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden"))
import torch_model as tm  # noqa: E402

COMMON = dict(norm="layernorm", norm_eps=1e-5, mlp="gelu", bias=True, tied_embeddings=True,
              pos="learned", rope_theta=10000.0)
PRESETS = {
    "small": dict(COMMON, vocab_size=8192, model_dim=384, n_layers=6, heads=6, kv_heads=6,
                  head_dim=64, ff_dim=1536, ctx=256),
    "tiny": dict(COMMON, vocab_size=4096, model_dim=256, n_layers=4, heads=4, kv_heads=4,
                 head_dim=64, ff_dim=1024, ctx=256),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=sorted(PRESETS), default="small")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch.set_num_threads (default: torch's default)")
    ap.add_argument("--tokens", default=None, help="raw little-endian int32 token file")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true",
                    help="torch.autocast(dtype=torch.bfloat16) around forward and loss (mixed precision)")
    ap.add_argument("--sdpa", action="store_true",
                    help="attention through F.scaled_dot_product_attention (the fused kernels)")
    args = ap.parse_args()
    if args.batch < 1 or args.ctx < 1 or args.steps < 1 or args.warmup < 0:
        ap.error("batch, ctx, steps must be >= 1 and warmup >= 0")

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)

    cfg = dict(PRESETS[args.preset])
    cfg["ctx"] = args.ctx
    V = cfg["vocab_size"]
    model = tm.DecoderLM(cfg, dtype=torch.float32, device=dev)
    model.init_weights(args.seed)
    model.sdpa = args.sdpa

    decay, no_decay = [], []
    for name, p in model.named_model_params():
        (decay if p.dim() >= 2 else no_decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=3e-4, betas=(0.9, 0.95), eps=1e-8)
    params = decay + no_decay

    data = None
    if args.tokens:
        data = torch.from_numpy(np.fromfile(args.tokens, dtype="<i4").astype(np.int64))
        if data.numel() < args.ctx + 1:
            sys.exit("token file %s has %d tokens, need at least ctx + 1 = %d"
                     % (args.tokens, data.numel(), args.ctx + 1))
        if int(data.min()) < 0 or int(data.max()) >= V:
            sys.exit("token file has ids outside [0, %d)" % V)
    gen = torch.Generator().manual_seed(args.seed + 1)

    def batch():
        if data is None:
            seq = torch.randint(0, V, (args.batch, args.ctx + 1), generator=gen)
        else:
            starts = torch.randint(0, data.numel() - args.ctx, (args.batch,), generator=gen)
            seq = torch.stack([data[s:s + args.ctx + 1] for s in starts.tolist()])
        seq = seq.to(dev)
        return seq[:, :-1], seq[:, 1:]

    def step():
        x, y = batch()
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=args.bf16):
            _, loss = model.loss(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        return loss

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync()
    dt = time.perf_counter() - t0

    print(json.dumps({
        "impl": "pytorch",
        "preset": args.preset,
        "threads": threads,
        "torch": torch.__version__,
        "bf16": args.bf16,
        "sdpa": args.sdpa,
        "batch": args.batch,
        "ctx": args.ctx,
        "tokens_per_s": round(args.batch * args.ctx * args.steps / dt, 1),
        "step_ms": round(1000.0 * dt / args.steps, 2),
        "steps": args.steps,
        "final_loss": round(float(loss.item()), 4),
    }))


if __name__ == "__main__":
    main()
