"""The other side of bench/compare.sh: the same workloads in NumPy/OpenBLAS
and PyTorch eager, timed the same way (median of repeated runs, after a warm
call). Prints one "name value unit" line. Needs Debian's python3-numpy and
python3-torch; never run by CI.

    /usr/bin/python3 bench/anchor.py exp | dot | logsoftmax | convex | tokenlogprobs | tinylm | adamw

Gemm has its own script, bench/gemm_numpy.py, run by bench/gemm_compare.sh.
"""
import sys
import time

import numpy as np


def median_seconds(reps, f):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[reps // 2]


def main():
    what = sys.argv[1]
    rng = np.random.default_rng(1)
    if what == "exp":  # np.exp on 4M float32 (AVX-512 SVML-style loops in NumPy)
        x = (rng.standard_normal(1 << 22) * 10).astype(np.float32)
        y = np.empty_like(x)
        print(f"exp {median_seconds(9, lambda: np.exp(x, out=y)) * 1e3:.3f} ms")
    elif what == "dot":  # 10,000 dots of 4096
        x = rng.standard_normal(4096).astype(np.float32)
        y = rng.standard_normal(4096).astype(np.float32)

        def f():
            for _ in range(10000):
                np.dot(x, y)
        print(f"dot {median_seconds(9, f) * 1e3:.3f} ms")
    else:
        import torch
        import torch.nn.functional as F
        if what == "logsoftmax":  # 512 rows of 49,152 on one thread
            torch.set_num_threads(1)
            x = torch.randn(512, 49152) * 3

            def f():
                with torch.no_grad():
                    F.log_softmax(x, -1)
            print(f"logsoftmax {median_seconds(5, f) * 1e3:.1f} ms")
        elif what in ("convex", "tokenlogprobs"):
            # convex: AFM's target on [2048, 49152]; tokenlogprobs: per-token
            # log-probs and their backward on [4096, 49152]. Two threads.
            torch.set_num_threads(2)
            n, v = (2048, 49152) if what == "convex" else (4096, 49152)
            lg = (torch.randn(n, v) * 3).requires_grad_()
            labels = torch.randint(0, v, (n,))
            teacher = torch.randint(0, v, (n,))
            dlogp = torch.randn(n)

            def f():
                lg.grad = None
                lp = F.log_softmax(lg, -1)
                if what == "convex":
                    loss = -(0.1 * lp.gather(1, labels[:, None]) + 0.9 * lp.gather(1, teacher[:, None])).mean()
                    loss.backward()
                else:
                    lp.gather(1, labels[:, None]).squeeze(1).backward(dlogp)
            print(f"{what} {median_seconds(5, f) * 1e3:.1f} ms")
        elif what == "tinylm":
            tinylm(torch, F)
        elif what == "adamw":
            # One AdamW step with gradient-norm clipping on a SmolLM2-sized
            # head, one 49,152 x 576 parameter (tensor/nn's BenchmarkAdamW),
            # two threads; torch's defaults (its single-tensor loop on CPU).
            torch.set_num_threads(2)
            w = torch.nn.Parameter(torch.full((49152, 576), 0.02))
            w.grad = (torch.arange(w.numel(), dtype=torch.float32) % 7 * 1e-4).reshape(w.shape)
            opt = torch.optim.AdamW([w], lr=1e-3)

            def f():
                torch.nn.utils.clip_grad_norm_([w], 1.0)
                opt.step()
            print(f"adamw {median_seconds(9, f) * 1e3:.1f} ms")
        else:
            sys.exit(f"anchor.py: unknown workload {what!r}")


def tinylm(torch, F):
    """One AdamW training step of the ~0.72M-parameter decoder LM that
    tensor/nn's BenchmarkTinyLMStep runs: vocab 256, d_model 128, 4 layers,
    4 heads, context 128, batch 16, RMSNorm, SwiGLU hidden 256, no biases,
    on two threads. Prints tokens per second."""
    nn = torch.nn
    torch.set_num_threads(2)
    torch.manual_seed(0)
    V, D, L, H, T, B = 256, 128, 4, 4, 128, 16

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(D))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.n1, self.n2 = RMSNorm(), RMSNorm()
            self.qkv = nn.Linear(D, 3 * D, bias=False)
            self.o = nn.Linear(D, D, bias=False)
            self.gate_up = nn.Linear(D, 4 * D, bias=False)  # SwiGLU gate and up, 2·D each
            self.down = nn.Linear(2 * D, D, bias=False)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = self.qkv(self.n1(x)).view(b, t, 3, H, D // H).permute(2, 0, 3, 1, 4)
            mask = torch.triu(torch.full((t, t), float("-inf")), 1)
            a = F.softmax(q @ k.transpose(-1, -2) / (D // H) ** 0.5 + mask, -1) @ v
            x = x + self.o(a.transpose(1, 2).reshape(b, t, D))
            g, u = self.gate_up(self.n2(x)).chunk(2, -1)
            return x + self.down(F.silu(g) * u)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, D)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.norm = RMSNorm()
            self.head = nn.Linear(D, V, bias=False)

        def forward(self, idx):
            x = self.emb(idx)
            for blk in self.blocks:
                x = blk(x)
            return self.head(self.norm(x))

    model = LM()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, V, (B, T + 1))

    def step():
        opt.zero_grad()
        logits = model(x[:, :-1])
        F.cross_entropy(logits.reshape(-1, V), x[:, 1:].reshape(-1)).backward()
        opt.step()
    for _ in range(2):
        step()
    d = median_seconds(9, step)
    print(f"tinylm {B * T / d:.0f} tokens/s")


if __name__ == "__main__":
    main()
