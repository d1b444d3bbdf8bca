#!/usr/bin/python3
"""Golden values for the divergences on rows longer than the row kernel's
block (distill's divBlock = 1024), from PyTorch autograd in float64.

Run with Debian's interpreter (python3-torch, python3-numpy):

    OMP_NUM_THREADS=1 /usr/bin/python3 gen_blocks.py > blocks.json

The logits are not stored: both sides build them from the same integer
formula (row i, column k) in float64 and round them to float32, so only
the losses and every 5th gradient entry are written. Scale 8 gives
ordinary rows; scale 150 spreads the logits over [-150, 0], so that many
probabilities of both models underflow float32 and the mixture of
GeneralizedJSD falls below 1e-30, where the Go code recomputes its log in
float64. The references are gen_golden.py's own (TRL's
generalized_jsd_loss for GJSD, batchmean reduction).
"""
import json
import numpy as np

import gen_golden  # its references; it sets torch's default dtype to float64

N, V, STRIDE = 2, 2100, 5


def logits(mul, off, mod, scale):
    i = np.arange(N)[:, None]
    k = np.arange(V)[None, :]
    m = (k * mul + i * off + 17) % mod
    return (-(m.astype(np.float64)) * scale / mod).astype(np.float32)


def divergence(kind, s, t, beta, T):
    loss, grad = gen_golden.divergence(kind, s, t, beta, T)
    return loss, grad[::STRIDE]


cases = []
for kind, beta, T, ss, st in [("soft", 0, 1.0, 8, 8), ("reverse", 1, 1.0, 8, 8), ("gjsd", 0.5, 1.0, 8, 8),
                              ("gjsd", 0.5, 1.0, 150, 150), ("gjsd", 0.1, 2.0, 150, 120),
                              ("forward", 0, 1.5, 150, 150), ("reverse", 1, 1.0, 150, 150),
                              ("gjsd", 0.7, 0.5, 150, 150)]:
    s = logits(7919, 4099, 2003, ss)
    t = logits(6151, 3571, 1999, st)
    loss, grad = divergence(kind, s, t, beta, T)
    cases.append(dict(name=f"{kind}_b{beta}_T{T}_scale{ss}_{st}", kind=kind, beta=beta, T=T,
                      scale_s=ss, scale_t=st, loss=loss, grad=grad))
print(json.dumps(dict(n=N, v=V, stride=STRIDE, cases=cases)))
