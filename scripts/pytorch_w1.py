#!/usr/bin/env python3
"""W1 of BENCHMARK.md in PyTorch (CPU eager), the same model as attnlab's W1.

Pre-LN transformer, learned positions, vocab 64, d_model 128, 4 heads, d_ff 512 (GELU),
2 layers, final LayerNorm, output head, cross-entropy, Adam (lr 1e-3), batch 16.
Sparse patterns are masked dense here (what a PyTorch user would write with
scaled_dot_product_attention and a boolean mask).

Prints one JSON line per configuration in BENCHMARK.md's format (impl "pytorch").

    python3 scripts/pytorch_w1.py --seq 256 1024 --attn dense --threads 2
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


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm_attn = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.norm_ff = nn.LayerNorm(D_MODEL)
        self.ff_in = nn.Linear(D_MODEL, D_FF)
        self.ff_out = nn.Linear(D_FF, D_MODEL)

    def forward(self, x, mask):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm_attn(x)).split(d, dim=2)
        split = lambda t: t.view(b, n, HEADS, d // HEADS).transpose(1, 2)
        out = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
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

    def forward(self, tokens, mask):
        n = tokens.shape[1]
        x = self.tokens(tokens) + self.positions(torch.arange(n))
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.norm(x))


def run(attn: str, n: int, warmup: int, steps: int) -> dict:
    torch.manual_seed(1)
    model = Model(n)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    mask = visible(attn, n)
    times = []
    for step in range(warmup + steps):
        tokens = torch.randint(0, VOCAB, (BATCH, n))
        targets = torch.roll(tokens, n // 4, dims=1)
        start = time.perf_counter()
        logits = model(tokens, mask)
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
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    for n in args.seq:
        for attn in args.attn:
            print(json.dumps(run(attn, n, args.warmup, args.steps)), flush=True)


if __name__ == "__main__":
    main()
