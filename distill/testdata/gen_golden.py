#!/usr/bin/python3
"""Golden values for package distill, from PyTorch autograd in float64.

Run with Debian's interpreter (python3-torch, python3-numpy):

    /usr/bin/python3 gen_golden.py > golden.json

Inputs are drawn here, rounded to float32 (what the Go code sees), and the
losses and their gradients with respect to the student logits are computed
in float64 by autograd, independently of the Go code's hand-derived
gradients. The GJSD reference follows TRL's generalized_jsd_loss: logits
divided by T, log_softmax, the mixture formed with logsumexp, and the
beta = 0 / beta = 1 endpoints special-cased as plain KL(p_T||p_S) and
KL(p_S||p_T); reduction is the sum over the vocabulary, mean over rows.
"""
import json
import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(20240729)


def f32(a):
    return np.asarray(a, dtype=np.float32)


def leaf(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def out(loss, z):
    loss.backward()
    return float(loss), z.grad.numpy().ravel().tolist()


def convex(logits, labels, teacher, w):
    z = leaf(logits)
    lp = F.log_softmax(z, -1)
    rows = [i for i, y in enumerate(labels) if y >= 0]
    if not rows:
        return 0.0, [0.0] * z.numel()
    terms = []
    for i in rows:
        terms.append(-(w * lp[i, teacher[i]] + (1 - w) * lp[i, labels[i]]))
    return out(torch.stack(terms).mean(), z)


def kl(log_p, log_q):  # KL(p||q) per row
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def divergence(kind, s, t, beta, T):
    z = leaf(s)
    tt = torch.tensor(np.asarray(t, dtype=np.float64))
    ls = F.log_softmax(z / T, -1)
    lt = F.log_softmax(tt / T, -1)
    if kind == "soft":
        loss = T * T * F.kl_div(ls, lt, reduction="batchmean", log_target=True)
    elif kind == "forward":
        loss = kl(lt, ls).mean()
    elif kind == "reverse":
        loss = kl(ls, lt).mean()
    else:  # gjsd, as TRL
        if beta == 0:
            jsd = F.kl_div(ls, lt, reduction="none", log_target=True)
        elif beta == 1:
            jsd = F.kl_div(lt, ls, reduction="none", log_target=True)
        else:
            b = torch.tensor(beta)
            m = torch.logsumexp(torch.stack([ls + torch.log(1 - b), lt + torch.log(b)]), dim=0)
            jsd = b * F.kl_div(m, lt, reduction="none", log_target=True) + (1 - b) * F.kl_div(
                m, ls, reduction="none", log_target=True)
        loss = jsd.sum() / jsd.size(0)
    return out(loss, z)


def sparse(logits, labels, ids, lps, k, mode, alpha):
    z = leaf(logits)
    n, v = z.shape
    ids_t = torch.tensor(np.asarray(ids, dtype=np.int64).reshape(n, k))
    lq_all = torch.tensor(np.asarray(lps, dtype=np.float64).reshape(n, k))
    lp = F.log_softmax(z, -1)
    terms = []
    for i in range(n):
        if labels is not None and labels[i] < 0:
            continue
        sup = ids_t[i]
        lq = lq_all[i]
        if mode == "drop":
            lq = lq - torch.logsumexp(lq, 0)
            lps_ = F.log_softmax(z[i, sup], 0)
            soft = (lq.exp() * (lq - lps_)).sum()
        else:
            lps_ = lp[i, sup]
            soft = (lq.exp() * (lq - lps_)).sum()
            qr = 1 - lq.exp().sum()
            if qr > 0:
                mask = torch.zeros(v, dtype=torch.bool)
                mask[sup] = True
                lpr = torch.logsumexp(z[i].masked_fill(mask, float("-inf")), 0) - torch.logsumexp(z[i], 0)
                soft = soft + qr * (torch.log(qr) - lpr)
        term = alpha * soft
        if alpha < 1:
            term = term - (1 - alpha) * lp[i, labels[i]]
        terms.append(term)
    return out(torch.stack(terms).mean(), z)


def main():
    cases = {"convex": [], "divergence": [], "sparse": []}

    # Convex combination: ordinary logits, an ignored row, a row where the
    # teacher agrees with the label, and w = 0.9, 0 and 1.
    n, v = 6, 13
    logits = f32(rng.standard_normal((n, v)) * 3)
    labels = [3, -100, 7, 0, 12, 5]
    teacher = [9, 4, 7, 2, 1, 5]
    for w in (0.9, 0.0, 1.0, 0.3):
        loss, grad = convex(logits, labels, teacher, w)
        cases["convex"].append(dict(name=f"random_w{w}", n=n, v=v, logits=logits.ravel().tolist(),
                                    labels=labels, teacher=teacher, w=w, loss=loss, grad=grad))

    # Stress: logits of magnitude 1e4 with gaps of 1e3; labels on tokens whose
    # probability underflows float32 (log p about -2e4).
    n, v = 4, 9
    base = np.array([-1e4, -9e3, -5e3, 0, 1e3, 2e3, 5e3, 9e3, 1e4])
    logits = f32(np.stack([rng.permutation(base) + rng.standard_normal(v) for _ in range(n)]))
    labels = [int(np.argmin(logits[0])), int(np.argmax(logits[1])), 4, int(np.argsort(logits[3])[-2])]
    teacher = [int(np.argmax(logits[0])), int(np.argmin(logits[1])), 4, int(np.argmax(logits[3]))]
    loss, grad = convex(logits, labels, teacher, 0.9)
    cases["convex"].append(dict(name="stress", n=n, v=v, logits=logits.ravel().tolist(),
                                labels=labels, teacher=teacher, w=0.9, loss=loss, grad=grad))

    # Divergences.
    n, v = 5, 17
    s = f32(rng.standard_normal((n, v)) * 2)
    t = f32(rng.standard_normal((n, v)) * 2 + 0.5)
    for kind, beta, T in [("soft", 0, 1.0), ("soft", 0, 2.0), ("forward", 0, 1.5), ("reverse", 1, 0.7),
                          ("gjsd", 0.5, 1.0), ("gjsd", 0.1, 2.0), ("gjsd", 0.9, 1.0), ("gjsd", 0.0, 1.0),
                          ("gjsd", 1.0, 1.3)]:
        loss, grad = divergence(kind, s, t, beta, T)
        cases["divergence"].append(dict(name=f"{kind}_b{beta}_T{T}", kind=kind, n=n, v=v, student=s.ravel().tolist(),
                                        teacher=t.ravel().tolist(), beta=beta, T=T, loss=loss, grad=grad))
    # Stress divergences: magnitude 1e4, gaps 1e3.
    n, v = 3, 9
    s = f32(np.stack([rng.permutation(base) for _ in range(n)]))
    t = f32(np.stack([rng.permutation(base) for _ in range(n)]))
    s[0] = t[0] + f32(rng.standard_normal(v))  # one row where the two nearly agree
    for kind, beta, T in [("soft", 0, 1.0), ("reverse", 1, 1.0), ("gjsd", 0.5, 1.0), ("gjsd", 0.3, 1000.0)]:
        loss, grad = divergence(kind, s, t, beta, T)
        cases["divergence"].append(dict(name=f"stress_{kind}_b{beta}_T{T}", kind=kind, n=n, v=v,
                                        student=s.ravel().tolist(), teacher=t.ravel().tolist(), beta=beta, T=T,
                                        loss=loss, grad=grad))

    # Sparse top-k from a teacher's log-softmax (float32, as stored).
    n, v, k = 5, 20, 4
    logits = f32(rng.standard_normal((n, v)) * 2)
    tl = rng.standard_normal((n, v)) * 3
    tlp = tl - np.log(np.exp(tl).sum(-1, keepdims=True))
    ids = np.argsort(-tlp, axis=-1)[:, :k]
    lps = f32(np.take_along_axis(tlp, ids, -1))
    ids = ids.astype(np.int32)
    labels = [3, 11, -100, 0, 19]
    for mode in ("drop", "bucket"):
        for alpha in (1.0, 0.5, 0.0):
            lab = labels if alpha < 1 else None
            loss, grad = sparse(logits, lab, ids, lps, k, mode, alpha)
            cases["sparse"].append(dict(name=f"{mode}_a{alpha}", n=n, v=v, k=k, logits=logits.ravel().tolist(),
                                        labels=lab, ids=ids.ravel().tolist(), logprobs=lps.ravel().tolist(),
                                        mode=mode, alpha=alpha, loss=loss, grad=grad))

    # Sparse stress: logits of magnitude 1e4, gaps 1e3, so the student's mass
    # off the support (the bucket) and some support probabilities underflow
    # float32; the teacher keeps 30% outside its top 3.
    n, v, k = 3, 9, 3
    logits = f32(np.stack([rng.permutation(base) + rng.standard_normal(v) for _ in range(n)]))
    ids = np.stack([rng.permutation(v)[:k] for _ in range(n)]).astype(np.int32)
    ids[0] = np.argsort(-logits[0])[:k]  # row 0: the support holds all the student's mass
    lps = f32(np.log(np.array([[0.4, 0.2, 0.1]] * n)))
    labels = [int(np.argmin(logits[0])), 2, int(np.argmax(logits[2]))]
    for mode in ("drop", "bucket"):
        loss, grad = sparse(logits, labels, ids, lps, k, mode, 0.7)
        cases["sparse"].append(dict(name=f"stress_{mode}", n=n, v=v, k=k, logits=logits.ravel().tolist(),
                                    labels=labels, ids=ids.ravel().tolist(), logprobs=lps.ravel().tolist(),
                                    mode=mode, alpha=0.7, loss=loss, grad=grad))

    print(json.dumps(cases, indent=None))


if __name__ == "__main__":
    main()
