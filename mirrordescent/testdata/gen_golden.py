#!/usr/bin/python3
"""Golden values for package mirrordescent, from implementations independent
of the Go code: simplex projection by bisection on the threshold (not
sorting), exponentiated gradient in the direct form, MDPO surrogates and
their gradients by torch autograd in float64, leave-one-out advantages by
explicit sums over the other samples.

Run with Debian's python3 (python3-numpy, python3-torch):
    /usr/bin/python3 mirrordescent/testdata/gen_golden.py
It writes mirrordescent/testdata/golden.json next to itself."""
import json
import os

import numpy as np
import torch

rng = np.random.default_rng(20240607)
torch.set_default_dtype(torch.float64)


def project_bisect(x):
    # theta solves sum(max(x - theta, 0)) = 1; the sum is decreasing in theta.
    x = np.asarray(x, dtype=np.float64)
    lo, hi = x.min() - 1.0, x.max()
    for _ in range(200):
        mid = (lo + hi) / 2
        if np.maximum(x - mid, 0).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.maximum(x - (lo + hi) / 2, 0)


proj = []
for name, x in [
    ("on the simplex", [0.5, 0.5]),
    ("vertex", [1.0, 0.0, 0.0]),
    ("past a vertex", [2.0, 0.0]),
    ("inside, sum 0.6", [0.1, 0.2, 0.3]),
    ("all negative", [-1.0, -2.0, -3.0]),
    ("all equal", [10.0, 10.0, 10.0, 10.0]),
    ("normal n=7", list(rng.normal(size=7))),
    ("normal×5 n=50", list(rng.normal(scale=5, size=50))),
    ("tiny n=200", list(rng.uniform(-1, 1, size=200) * 1e-3)),
]:
    proj.append({"name": name, "x": [float(v) for v in x], "want": [float(v) for v in project_bisect(x)]})

eg = []
for n, eta, scale in [(3, 0.5, 1.0), (10, 0.1, 3.0), (64, 2.0, 0.5), (5, 0.0, 1.0)]:
    x = rng.dirichlet(np.ones(n))
    g = rng.normal(scale=scale, size=n)
    w = x * np.exp(-eta * g)
    eg.append({"name": f"n={n} eta={eta} scale={scale}", "x": list(map(float, x)), "grad": list(map(float, g)), "eta": eta,
               "want": list(map(float, w / w.sum()))})

kl = []
for n in [2, 6, 30]:
    p = rng.dirichlet(np.ones(n))
    q = rng.dirichlet(np.ones(n))
    kl.append({"name": f"n={n}", "p": list(map(float, p)), "q": list(map(float, q)),
               "want": float(np.sum(p * np.log(p / q)))})

tab = []
for n, t in [(4, 1.0), (12, 0.3), (7, 5.0)]:
    pk = rng.dirichlet(np.ones(n))
    a = rng.normal(size=n)
    w = pk * np.exp(t * a)
    tab.append({"name": f"n={n} t={t}", "logp": list(map(float, np.log(pk))), "adv": list(map(float, a)), "t": t,
                "want": list(map(float, np.log(w / w.sum())))})


def surrogate_torch(new, old, adv_tok, t):
    new = torch.tensor(new, requires_grad=True)
    old = torch.tensor(old)
    adv_tok = torch.tensor(adv_tok)
    lr = new - old
    rho = torch.exp(lr)
    gain = (rho * adv_tok).mean()
    klh = (rho * lr - rho + 1).mean()
    loss = -gain + klh / t
    loss.backward()
    return float(loss), float(gain), float(klh), list(map(float, new.grad))


seq = []
for n, t, spread in [(4, 1.0, 0.1), (8, 0.5, 0.5), (16, 2.0, 2.0), (6, 0.25, 0.0)]:
    old = rng.normal(loc=-20, scale=5, size=n)
    new = old + rng.normal(scale=spread, size=n)
    adv = rng.normal(size=n)
    loss, gain, klh, grad = surrogate_torch(new, old, adv, t)
    seq.append({"name": f"n={n} t={t} spread={spread}", "new": list(map(float, new)), "old": list(map(float, old)), "adv": list(map(float, adv)),
                "t": t, "loss": loss, "gain": gain, "kl": klh, "grad": grad})

tok = []
for lengths, t in [([3, 1, 4], 1.0), ([5, 0, 2, 6], 0.7)]:
    n = sum(lengths)
    old = rng.normal(loc=-2, scale=1, size=n).astype(np.float32)
    new = (old + rng.normal(scale=0.3, size=n)).astype(np.float32)
    adv = rng.normal(size=len(lengths))
    adv_tok = np.repeat(adv, lengths)
    loss, gain, klh, grad = surrogate_torch(new.astype(np.float64), old.astype(np.float64), adv_tok, t)
    tok.append({"name": f"lengths={lengths} t={t}", "new": list(map(float, new)), "old": list(map(float, old)), "lengths": lengths,
                "adv": list(map(float, adv)), "t": t, "loss": loss, "gain": gain, "kl": klh, "grad": grad})

loo = []
for k, prompts, beta in [(2, 3, 0.05), (4, 2, 0.1), (5, 1, 0.0)]:
    n = k * prompts
    scores = rng.normal(size=n)
    old = rng.normal(loc=-30, scale=4, size=n)
    ref = old + rng.normal(scale=1, size=n)
    shaped = scores - beta * (old - ref)
    adv = np.empty(n)
    for g in range(prompts):
        for i in range(k):
            others = [shaped[g * k + j] for j in range(k) if j != i]
            adv[g * k + i] = shaped[g * k + i] - sum(others) / (k - 1)
    loo.append({"name": f"K={k} prompts={prompts} beta={beta}", "k": k, "beta": beta, "scores": list(map(float, scores)), "old": list(map(float, old)),
                "ref": list(map(float, ref)), "shaped": list(map(float, shaped)), "adv": list(map(float, adv))})

out = {"project": proj, "entropic": eg, "kl": kl, "tabular": tab, "surrogate": seq, "token": tok, "mdloo": loo}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print("wrote", path)
