#!/usr/bin/python3
"""Golden values for GKD.Loss (on-policy distillation), from PyTorch
autograd in float64.

Run with Debian's interpreter (python3-torch, python3-numpy):

    /usr/bin/python3 gen_onpolicy.py > onpolicy.json

The reference is TRL's GKDTrainer.generalized_jsd_loss written out in plain
torch: logits over [B, L, V] divided by T, log_softmax, the beta = 0 and
beta = 1 endpoints as KL(p_T||p_S) and KL(p_S||p_T), the mixture by
logsumexp otherwise; the per-token divergence summed over the vocabulary,
kept where labels != -100, summed and divided by the number of kept tokens
(batchmean with clamp_min(1)). Inputs are rounded to float32, what the Go
code sees. The "student generated" sequences are simulated: a prompt of -100
labels followed by completion tokens sampled from the student itself.
"""
import json
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20261130)


def gjsd(student, teacher, labels, beta, T):
    s = student / T
    t = teacher / T
    ls = F.log_softmax(s, dim=-1)
    lt = F.log_softmax(t, dim=-1)
    if beta == 0:
        jsd = F.kl_div(ls, lt, reduction="none", log_target=True)
    elif beta == 1:
        jsd = F.kl_div(lt, ls, reduction="none", log_target=True)
    else:
        b = torch.tensor(beta)
        m = torch.logsumexp(torch.stack([ls + torch.log1p(-b), lt + torch.log(b)]), dim=0)
        jsd = b * F.kl_div(m, lt, reduction="none", log_target=True) + (1 - b) * F.kl_div(m, ls, reduction="none", log_target=True)
    mask = labels != -100
    jsd = jsd[mask]
    return jsd.sum() / mask.sum().clamp_min(1)


cases = []


def case(name, B, L, V, prompt, scale, beta, T, tscale=None):
    s = np.float32(rng.normal(size=(B, L, V)) * scale)
    t = np.float32(rng.normal(size=(B, L, V)) * (tscale or scale))
    labels = np.full((B, L), -100, dtype=np.int64)
    probs = torch.softmax(torch.tensor(s, dtype=torch.float64), -1).numpy()
    for b in range(B):
        for l in range(prompt[b], L):
            # The student's own sample at this position: on-policy data.
            labels[b, l] = rng.choice(V, p=probs[b, l] / probs[b, l].sum())
    z = torch.tensor(s, dtype=torch.float64, requires_grad=True)
    loss = gjsd(z, torch.tensor(t, dtype=torch.float64), torch.tensor(labels), beta, T)
    loss.backward()
    cases.append(dict(name=name, n=B * L, v=V, beta=beta, t=T,
                      student=s.ravel().tolist(), teacher=t.ravel().tolist(),
                      labels=labels.ravel().tolist(), loss=float(loss), grad=z.grad.numpy().ravel().tolist()))


case("jsd", 3, 5, 11, [2, 1, 4], 2.0, 0.5, 1.0)
case("reverse", 3, 5, 11, [2, 0, 3], 2.0, 1.0, 1.0)
case("forward", 2, 6, 9, [3, 5], 1.5, 0.0, 1.0)
case("beta0.1 T2", 4, 4, 17, [1, 2, 3, 0], 3.0, 0.1, 2.0)
case("peaked", 2, 5, 13, [1, 2], 20.0, 0.9, 1.0, tscale=30.0)
case("all prompt", 2, 3, 7, [3, 3], 1.0, 0.5, 1.0)
print(json.dumps(cases, indent=None))
