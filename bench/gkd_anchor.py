"""PyTorch eager side of bench/gkd_compare.sh: TRL's GKD loss
(generalized_jsd_loss with a labels mask, beta 0.5, batchmean over the kept
tokens) and its backward on float32 logits [8, 64, 32000], the first quarter
of each sequence masked as prompt. Prints "gkd <ms> ms", the median of 5
runs after a warm call. Needs Debian's python3-torch; never run by CI.

    /usr/bin/python3 bench/gkd_anchor.py [threads]
"""
import sys
import time

import torch
import torch.nn.functional as F


def gjsd(s, t, labels, beta):
    ls = F.log_softmax(s, dim=-1)
    lt = F.log_softmax(t, dim=-1)
    b = torch.tensor(beta, dtype=s.dtype)
    m = torch.logsumexp(torch.stack([ls + torch.log1p(-b), lt + torch.log(b)]), dim=0)
    jsd = b * F.kl_div(m, lt, reduction="none", log_target=True) + (1 - b) * F.kl_div(m, ls, reduction="none", log_target=True)
    mask = labels != -100
    jsd = jsd[mask]
    return jsd.sum() / mask.sum().clamp_min(1)


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    g = torch.Generator().manual_seed(1)
    B, L, V = 8, 64, 32000
    s = (torch.randn(B, L, V, generator=g) * 3).requires_grad_(True)
    t = torch.randn(B, L, V, generator=g) * 3
    labels = torch.zeros(B, L, dtype=torch.long)
    labels[:, : L // 4] = -100

    def step():
        s.grad = None
        gjsd(s, t, labels, 0.5).backward()

    step()
    ts = []
    for _ in range(5):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(f"gkd {ts[2] * 1e3:.1f} ms")


main()
