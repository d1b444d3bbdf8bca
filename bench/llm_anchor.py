#!/usr/bin/env python3
"""PyTorch eager anchor for the Llama-family decoder at SmolLM2-135M's shape
(hidden 576, 30 layers, 9 query / 3 key-value heads, head 64, SwiGLU 1536,
vocab 49152, tied head; random float32 weights), on two threads — the same
math tensor/nn's BenchmarkLLMStep and BenchmarkLLMDecode run.

    /usr/bin/python3 bench/llm_anchor.py step        # fwd+bwd+AdamW, 4 x 256 tokens: tokens/s
    /usr/bin/python3 bench/llm_anchor.py decode 1    # greedy, KV cache, prompt 64 + 128 new: tokens/s
    /usr/bin/python3 bench/llm_anchor.py decode 8

Each prints one line "name tokens/s tokens-per-CPU-second".
"""
import sys
import time

import torch
import torch.nn.functional as F

V, D, L, H, KV, HD, FF = 49152, 576, 30, 9, 3, 64, 1536
EPS, THETA = 1e-5, 100000.0


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rot(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        P = torch.nn.Parameter
        n = lambda *s: P(torch.randn(*s) * 0.02)
        self.emb = n(V, D)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.n1, m.n2 = P(torch.ones(D)), P(torch.ones(D))
            m.q, m.k, m.v, m.o = n(H * HD, D), n(KV * HD, D), n(KV * HD, D), n(D, H * HD)
            m.g, m.u, m.d = n(FF, D), n(FF, D), n(D, FF)
            self.layers.append(m)
        self.norm = P(torch.ones(D))
        self.inv = 1.0 / THETA ** (torch.arange(0, HD, 2).float() / HD)

    def rope(self, pos):
        f = torch.outer(pos.float(), self.inv)
        e = torch.cat((f, f), -1)
        return e.cos(), e.sin()

    def forward(self, ids, cache=None, start=0):
        """ids [B, T]; cache: list of (k, v) [B, KV, S, HD] or None."""
        b, t = ids.shape
        x = self.emb[ids]
        cos, sin = self.rope(torch.arange(start, start + t))
        new = []
        for i, m in enumerate(self.layers):
            h = rms(x, m.n1)
            q = F.linear(h, m.q).view(b, t, H, HD).transpose(1, 2)
            k = F.linear(h, m.k).view(b, t, KV, HD).transpose(1, 2)
            v = F.linear(h, m.v).view(b, t, KV, HD).transpose(1, 2)
            q, k = rot(q, cos, sin), rot(k, cos, sin)
            if cache is not None:
                k = torch.cat((cache[i][0], k), 2)
                v = torch.cat((cache[i][1], v), 2)
            new.append((k, v))
            s = k.shape[2]
            kk = k.repeat_interleave(H // KV, 1)
            vv = v.repeat_interleave(H // KV, 1)
            a = q @ kk.transpose(-1, -2) * HD ** -0.5
            if t > 1:
                a = a + torch.triu(torch.full((t, s), float("-inf")), s - t + 1)
            o = (F.softmax(a, -1) @ vv).transpose(1, 2).reshape(b, t, H * HD)
            x = x + F.linear(o, m.o)
            h = rms(x, m.n2)
            x = x + F.linear(F.silu(F.linear(h, m.g)) * F.linear(h, m.u), m.d)
        return F.linear(rms(x, self.norm), self.emb), new


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def step():
    model = Model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    B, T = 4, 256
    x = torch.randint(0, V, (B, T + 1))

    def one():
        opt.zero_grad()
        logits, _ = model(x[:, :-1])
        F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1)).backward()
        opt.step()
    one()
    ts, cs = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        one()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    # The second figure counts CPU time, which a loaded machine inflates
    # less than wall time: tokens per CPU-second.
    print(f"llm_step {B * T / median(ts):.1f} {B * T / median(cs):.1f}")


@torch.no_grad()
def decode(batch):
    model = Model()
    prompt = torch.randint(0, V, (batch, 64))

    def one():
        logits, cache = model(prompt)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        pos = prompt.shape[1]
        for _ in range(127):
            logits, cache = model(nxt, cache, pos)
            pos += 1
            nxt = logits[:, -1].argmax(-1, keepdim=True)
    ts, cs = [], []
    for _ in range(2):
        t0, c0 = time.perf_counter(), time.process_time()
        one()
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    print(f"llm_decode_b{batch} {batch * 128 / min(ts):.1f} {batch * 128 / min(cs):.1f}")


if __name__ == "__main__":
    torch.set_num_threads(2)
    torch.manual_seed(0)
    if sys.argv[1] == "step":
        step()
    else:
        decode(int(sys.argv[2]))
