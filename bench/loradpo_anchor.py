#!/usr/bin/env python3
"""PyTorch eager anchor for bench/loradpo: one DPO step with LoRA on
q/k/v/o of a Llama decoder of SmolLM2-135M's shape (random weights,
float32), on the same threads: reference forward with the adapters off
(no_grad), policy forward, summed completion log-probs, DPO loss,
backward into the adapters only (the base is frozen), AdamW on the
adapters. Prints the best step time and the peak RSS.

    /usr/bin/python3 bench/loradpo_anchor.py [--threads 2] [--steps 3] [--quick]
"""
import argparse
import math
import resource
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--completion", type=int, default=128)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    V, D, L, H, KV, FF = 49152, 576, 30, 9, 3, 1536
    if a.quick:
        V, D, L, H, KV, FF = 512, 64, 2, 4, 2, 128
    hd, eps, theta, r = D // H, 1e-5, 100000.0, a.rank
    scaling = 2 * r / r

    def P(*shape, std=0.02):
        return (torch.randn(*shape) * std).requires_grad_(False)

    emb = P(V, D)
    layers = []
    lora = []
    for _ in range(L):
        ly = {"n1": torch.ones(D), "n2": torch.ones(D), "q": P(H * hd, D), "k": P(KV * hd, D), "v": P(KV * hd, D),
              "o": P(D, H * hd), "g": P(FF, D), "u": P(FF, D), "d": P(D, FF)}
        for n in ("q", "k", "v", "o"):
            out, inp = ly[n].shape
            A = ((torch.rand(r, inp) * 2 - 1) / math.sqrt(inp)).requires_grad_(True)
            B = torch.zeros(out, r).requires_grad_(True)
            ly[n + "_lora"] = (A, B)
            lora += [A, B]
        layers.append(ly)
    norm = torch.ones(D)
    opt = torch.optim.AdamW(lora, lr=1e-4)

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def lin(ly, n, x, on):
        y = x @ ly[n].T
        if on and n + "_lora" in ly:
            A, B = ly[n + "_lora"]
            y = y + (x @ A.T) @ B.T * scaling
        return y

    def rot(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    def forward(ids, on):
        Bn, T = ids.shape
        x = emb[ids]
        inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        fr = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        e = torch.cat((fr, fr), -1)
        cos, sin = e.cos(), e.sin()
        for ly in layers:
            h = rms(x, ly["n1"])
            q = lin(ly, "q", h, on).view(Bn, T, H, hd).transpose(1, 2)
            k = lin(ly, "k", h, on).view(Bn, T, KV, hd).transpose(1, 2)
            v = lin(ly, "v", h, on).view(Bn, T, KV, hd).transpose(1, 2)
            q, k = q * cos + rot(q) * sin, k * cos + rot(k) * sin
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
            s = (q @ k.transpose(-1, -2)) * hd ** -0.5
            s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
            o = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(Bn, T, H * hd)
            x = x + lin(ly, "o", o, on)
            h = rms(x, ly["n2"])
            x = x + lin(ly, "d", F.silu(lin(ly, "g", h, on)) * lin(ly, "u", h, on), on)
        return rms(x, norm) @ emb.T

    n, T = a.pairs, a.prompt + a.completion
    ids = torch.randint(0, V, (2 * n, T))
    mask = torch.zeros(2 * n, T - 1)
    mask[:, a.prompt - 1:] = 1

    def seq_logps(logits):
        lp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None]).squeeze(-1)
        return (lp * mask).sum(-1)

    times, cpus = [], []
    for _ in range(1 + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.no_grad():
            ref = seq_logps(forward(ids, False))
        pol = seq_logps(forward(ids, True))
        z = 0.1 * ((pol[:n] - ref[:n]) - (pol[n:] - ref[n:]))
        loss = -F.logsigmoid(z).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(lora, 1.0)
        opt.step()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print("torch step_ms %.1f" % (1e3 * min(times[1:])))
    print("torch step_cpu_ms %.1f" % (1e3 * min(cpus[1:])))
    print("torch peak_rss_mib %.0f" % (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


if __name__ == "__main__":
    main()
