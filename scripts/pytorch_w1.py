#!/usr/bin/env python3
"""W1 of BENCHMARK.md in PyTorch (CPU eager), the same model as attnlab's W1.

Pre-LN transformer, learned positions, vocab 64, d_model 128, 4 heads, d_ff 512 (GELU),
2 layers, final LayerNorm, output head, cross-entropy, Adam (lr 1e-3), batch 16.
Sparse patterns come two ways: masked dense (`scaled_dot_product_attention` with a
boolean mask, what most PyTorch users write) and, with `--reshape`, the cheapest
reshape a PyTorch user would write: block attention as a batch of blocks, and the
local window as each block of 64 queries against its own and its two neighbour blocks
(192 keys, masked to |i - j| <= 64). The JSON line's "attn" is then "block_reshape" or
"local_reshape".

Prints one JSON line per configuration in the project's benchmark format (impl
"pytorch"; see docs/performance.md, "Reference workloads").

    python3 scripts/pytorch_w1.py --seq 256 1024 4096 --attn dense local block --reshape --threads 2
"""

import argparse
import json
import resource
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

VOCAB, D_MODEL, HEADS, D_FF, LAYERS, BATCH = 64, 128, 4, 512, 2, 16


def visible(attn: str, n: int) -> torch.Tensor | None:
    """Boolean [n, n] mask, True = may attend (None for dense)."""
    i = torch.arange(n).unsqueeze(1)
    j = torch.arange(n).unsqueeze(0)
    if attn == "dense":
        return None
    if attn == "local":
        return (i - j).abs() <= 64
    if attn == "block":
        return (i // 64) == (j // 64)
    raise SystemExit(f"unknown pattern {attn}")


BLOCK = 64


def blocks_of(t: torch.Tensor) -> torch.Tensor:
    """[b, h, n, d] -> [b, h, n / 64, 64, d] (n a multiple of 64)."""
    b, h, n, d = t.shape
    return t.view(b, h, n // BLOCK, BLOCK, d)


def block_attention(q, k, v):
    """Block attention as a batch of 64-blocks: no mask, no wasted pairs."""
    b, h, n, d = q.shape
    out = F.scaled_dot_product_attention(blocks_of(q), blocks_of(k), blocks_of(v))
    return out.reshape(b, h, n, d)


def local_mask(nb: int) -> torch.Tensor:
    """[nb, 64, 192]: query i of block t sees key j of blocks t-1, t, t+1 when
    |i - j| <= 64 and the key block exists."""
    i = torch.arange(BLOCK).view(1, BLOCK, 1) + BLOCK
    j = torch.arange(3 * BLOCK).view(1, 1, 3 * BLOCK)
    t = torch.arange(nb).view(nb, 1, 1)
    kb = t + j // BLOCK - 1
    return ((i - j).abs() <= 64) & (kb >= 0) & (kb < nb)


def local_attention(q, k, v, mask):
    """Each block of 64 queries against its own and both neighbour key blocks."""
    b, h, n, d = q.shape
    nb = n // BLOCK

    def neighbours(t):
        t = blocks_of(t)
        z = torch.zeros_like(t[:, :, :1])
        prev = torch.cat([z, t[:, :, :-1]], dim=2)
        nxt = torch.cat([t[:, :, 1:], z], dim=2)
        return torch.cat([prev, t, nxt], dim=3)  # [b, h, nb, 192, d]

    out = F.scaled_dot_product_attention(blocks_of(q), neighbours(k), neighbours(v), attn_mask=mask)
    return out.reshape(b, h, n, d)


def attend(attn: str, q, k, v, mask):
    if attn == "block_reshape":
        return block_attention(q, k, v)
    if attn == "local_reshape":
        return local_attention(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm_attn = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.norm_ff = nn.LayerNorm(D_MODEL)
        self.ff_in = nn.Linear(D_MODEL, D_FF)
        self.ff_out = nn.Linear(D_FF, D_MODEL)

    def forward(self, x, mask, attn):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).split(d, dim=2)
        split = lambda t: t.view(b, n, HEADS, d // HEADS).transpose(1, 2)
        out = attend(attn, split(q), split(k), split(v), mask)
        x = x + self.proj(out.transpose(1, 2).reshape(b, n, d))
        return x + self.ff_out(F.gelu(self.ff_in(self.norm_ff(x))))


class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.tokens = nn.Embedding(VOCAB, D_MODEL)
        self.positions = nn.Embedding(n, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, VOCAB)

    def forward(self, tokens, mask, attn):
        n = tokens.shape[1]
        x = self.tokens(tokens) + self.positions(torch.arange(n))
        for block in self.blocks:
            x = block(x, mask, attn)
        return self.head(self.norm(x))


def run(attn: str, n: int, warmup: int, steps: int) -> dict:
    torch.manual_seed(1)
    model = Model(n)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    if attn == "local_reshape":
        mask = local_mask(n // BLOCK)
    elif attn == "block_reshape":
        mask = None
    else:
        mask = visible(attn, n)
    times = []
    for step in range(warmup + steps):
        tokens = torch.randint(0, VOCAB, (BATCH, n))
        targets = torch.roll(tokens, n // 4, dims=1)
        start = time.perf_counter()
        logits = model(tokens, mask, attn)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= warmup:
            times.append(time.perf_counter() - start)
    step_ms = statistics.median(times) * 1000.0
    return {
        "impl": "pytorch",
        "backend": "cpu",
        "workload": "train_step",
        "attn": attn,
        "seq": n,
        "batch": BATCH,
        "step_ms": round(step_ms, 2),
        "tokens_per_s": round(BATCH * n / (step_ms / 1000.0), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "steps": steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seq", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--attn", nargs="+", default=["dense"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reshape", action="store_true", help="also the reshaped local and block")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.seq:
        for attn in args.attn:
            print(json.dumps(run(attn, n, args.warmup, args.steps)), flush=True)
            if args.reshape and attn in ("local", "block"):
                print(json.dumps(run(attn + "_reshape", n, args.warmup, args.steps)), flush=True)


if __name__ == "__main__":
    main()
