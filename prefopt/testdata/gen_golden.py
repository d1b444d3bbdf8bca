#!/usr/bin/python3
"""Golden values for package prefopt, from an independent implementation.

Run with Debian's python3-torch:  /usr/bin/python3 gen_golden.py > golden.json

Losses follow TRL's DPOTrainer.dpo_loss / CPOTrainer (loss_type sigmoid,
robust, ipo, hinge, simpo; rpo_alpha for the NLL term) and the published
formulas in docs/ALGORITHMS.md; gradients come from torch autograd in float64.
Nothing here calls or copies the Go code.
"""
import json
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(20240611)


def rnd(*shape, scale=1.0, shift=0.0):
    return (torch.rand(*shape, generator=g) * scale + shift)


def lst(t):
    return [float(x) for x in t.detach().reshape(-1)]


# ---------------------------------------------------------------- pairwise
def batches():
    out = {}
    # torchtune's test batch (docs/ALGORITHMS.md).
    out["torchtune"] = dict(
        pc=[-0.5, -10.0, -1.0], pr=[-0.1, -30.0, -21.0],
        rc=[-0.5, -10.1, -0.1], rr=[-0.1, -20.1, -0.1],
        lc=[1, 4, 2], lr=[3, 5, 7])
    n = 6
    out["random"] = dict(
        pc=lst(rnd(n, scale=-40)), pr=lst(rnd(n, scale=-40)),
        rc=lst(rnd(n, scale=-40)), rr=lst(rnd(n, scale=-40)),
        lc=[int(x) for x in torch.randint(1, 50, (n,), generator=g)],
        lr=[int(x) for x in torch.randint(1, 50, (n,), generator=g)])
    # Stress: log-prob gaps of hundreds with beta = 10 (|beta*h| ~ 1e4).
    out["stress"] = dict(
        pc=[-1.0, -900.0, -5.0, -300.0], pr=[-800.0, -2.0, -5.0, -300.5],
        rc=[-3.0, -100.0, -5.0, -300.0], rr=[-2.0, -700.0, -5.0, -300.0],
        lc=[1, 2, 3, 4], lr=[1, 1, 1, 1])
    return out


def trl_loss(kind, p, b):
    """TRL-style per-pair losses; returns (losses, chosen_rewards, rejected_rewards, logps_c, logps_r)."""
    pc, pr = p
    rc, rr = torch.tensor(b["rc"]), torch.tensor(b["rr"])
    lc, lr = torch.tensor(b["lc"], dtype=torch.float64), torch.tensor(b["lr"], dtype=torch.float64)
    name = kind["name"]
    if name == "ipo" and not kind.get("sum", False):
        # TRL divides the log-probs by the completion length for ipo.
        pc, pr, rc, rr = pc / lc, pr / lr, rc / lc, rr / lr
    if name == "simpo":
        beta, gamma = kind["beta"], kind["gamma"]
        ac, ar = pc / lc, pr / lr
        logits = (ac - ar) - gamma / beta
        losses = -F.logsigmoid(beta * logits)
        return losses, beta * ac, beta * ar, ac, ar
    logits = (pc - rc) - (pr - rr)
    if name == "dpo":
        beta, eps = kind["beta"], kind["eps"]
        losses = -F.logsigmoid(beta * logits) * (1 - eps) - F.logsigmoid(-beta * logits) * eps
    elif name == "robust":
        beta, eps = kind["beta"], kind["eps"]
        losses = (-F.logsigmoid(beta * logits) * (1 - eps) + F.logsigmoid(-beta * logits) * eps) / (1 - 2 * eps)
    elif name == "hinge":
        beta = kind["beta"]
        losses = torch.relu(1 - beta * logits)
    elif name == "ipo":
        beta = kind["tau"]
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(name)
    return losses, beta * (pc - rc), beta * (pr - rr), pc, pr


kinds = [
    dict(name="dpo", beta=0.1, eps=0.0),
    dict(name="dpo", beta=0.5, eps=0.1),
    dict(name="dpo", beta=10.0, eps=0.0),
    dict(name="dpo", beta=10.0, eps=0.3),
    dict(name="robust", beta=0.1, eps=0.2),
    dict(name="robust", beta=10.0, eps=0.1),
    dict(name="ipo", tau=0.1),
    dict(name="ipo", tau=0.1, sum=True),
    dict(name="ipo", tau=2.0),
    dict(name="hinge", beta=0.1),
    dict(name="hinge", beta=2.0),
    dict(name="simpo", beta=2.0, gamma=0.5),
    dict(name="simpo", beta=10.0, gamma=1.4),
    dict(name="dpo", beta=0.1, eps=0.0, nll=0.2),
    dict(name="ipo", tau=0.5, nll=1.0),
]

BATCHES = batches()
pairwise = []
for bname, b in BATCHES.items():
    for kind in kinds:
        pc = torch.tensor(b["pc"], requires_grad=True)
        pr = torch.tensor(b["pr"], requires_grad=True)
        losses, cr, rr_, lpc, lpr = trl_loss(kind, (pc, pr), b)
        loss = losses.mean()
        nll = None
        if "nll" in kind:
            # TRL rpo_alpha: cross-entropy mean over all chosen tokens.
            nll = -pc.sum() / sum(b["lc"])
            loss = loss + kind["nll"] * nll
        gc, gr = torch.autograd.grad(loss, [pc, pr])
        pairwise.append(dict(
            batch=bname, kind=kind, per_pair=lst(losses), loss=float(loss),
            grad_chosen=lst(gc), grad_rejected=lst(gr),
            rewards_chosen=float(cr.mean()), rewards_rejected=float(rr_.mean()),
            margin=float((cr - rr_).mean()), accuracy=float((cr > rr_).double().mean()),
            logp_chosen=float(lpc.mean()), logp_rejected=float(lpr.mean()),
            nll=float(nll) if nll is not None else 0.0))

# ------------------------------------------------------------ reward models
LEVELS = {"significantly_better": 0.95, "better": 0.85, "slightly_better": 0.75, "negligibly_better": 0.65}
rm_c = rnd(8, scale=6, shift=-3)
rm_r = rnd(8, scale=6, shift=-3)
rm_m = rnd(8, scale=2)
rm_levels = ["significantly_better", "better", "slightly_better", "negligibly_better"] * 2
reward = {"chosen": lst(rm_c), "rejected": lst(rm_r), "margin": lst(rm_m), "levels": rm_levels}
for name in ["bt", "bt_margin", "soft"]:
    c = rm_c.clone().requires_grad_(True)
    r = rm_r.clone().requires_grad_(True)
    z = c - r
    if name == "bt":
        losses = -F.logsigmoid(z)
    elif name == "bt_margin":
        losses = -F.logsigmoid(z - rm_m)
    else:
        p = torch.tensor([LEVELS[l] for l in rm_levels])
        # Written as a BCE with soft targets: an independent route to the same loss.
        losses = F.binary_cross_entropy_with_logits(z, p, reduction="none")
    loss = losses.mean()
    gc, gr = torch.autograd.grad(loss, [c, r])
    reward[name] = dict(loss=float(loss), grad_chosen=lst(gc), grad_rejected=lst(gr))

# Grading: [M, C] float32-representable logits, labels with skips.
M, C = 9, 5
glog = (torch.randn(M, C, generator=g) * 3).float().double()
glab = [0, 4, -1, 2, 3, 1, -1, 0, 2]
lam = 0.3
x = glog.clone().requires_grad_(True)
mask = torch.tensor([l >= 0 for l in glab])
tgt = torch.tensor([max(l, 0) for l in glab])
ce = F.cross_entropy(x[mask], tgt[mask], reduction="mean") * lam
(gx,) = torch.autograd.grad(ce, [x])
reward["grading"] = dict(logits=lst(glog), shape=[M, C], labels=glab, lam=lam, loss=float(ce), grad=lst(gx))

# --------------------------------------------------------------- online RL
online = {}
R = rnd(12, scale=4, shift=-1)
R[4:8] = 0.7  # a group of equal rewards
for k in [3, 4]:
    grp = R.view(-1, k)
    mean = grp.mean(dim=1, keepdim=True)
    std = grp.std(dim=1, keepdim=True)  # unbiased, as TRL's GRPO
    online[f"grpo_k{k}"] = lst((grp - mean) / (std + 1e-4))
online["rewards"] = lst(R)

n = 10
lp_new = rnd(n, scale=-3)
lp_old = lp_new + rnd(n, scale=0.8, shift=-0.4)
adv = rnd(n, scale=4, shift=-2)
online.update(logp=lst(lp_new), old_logp=lst(lp_old), adv=lst(adv))
for eps in [0.2, 0.1]:
    x = lp_new.clone().requires_grad_(True)
    ratio = torch.exp(x - lp_old)
    l1 = -adv * ratio
    l2 = -adv * torch.clamp(ratio, 1 - eps, 1 + eps)
    loss = torch.max(l1, l2).mean()
    (gx,) = torch.autograd.grad(loss, [x])
    with torch.no_grad():
        clipfrac = float((l2 > l1).double().mean())
        lr_ = lp_new - lp_old
        approx_kl = float(((torch.exp(lr_) - 1) - lr_).mean())
    online[f"ppo_eps{eps}"] = dict(loss=float(loss), grad=lst(gx), clipfrac=clipfrac, approx_kl=approx_kl)

ref = lp_new + rnd(n, scale=2, shift=-1)
online["ref_logp"] = lst(ref)
for name in ["k1", "k2", "k3"]:
    x = lp_new.clone().requires_grad_(True)
    d = ref - x
    est = {"k1": -d, "k2": d ** 2 / 2, "k3": torch.exp(d) - 1 - d}[name]
    loss = est.mean()
    (gx,) = torch.autograd.grad(loss, [x])
    online[name] = dict(loss=float(loss), grad=lst(gx))

base = rnd(n, scale=1)
for name, b in [("reinforce_mean", None), ("reinforce_base", base)]:
    x = lp_new.clone().requires_grad_(True)
    bb = adv.mean() if b is None else b
    loss = -((adv - bb) * x).mean()
    (gx,) = torch.autograd.grad(loss, [x])
    online[name] = dict(loss=float(loss), grad=lst(gx))
online["baseline"] = lst(base)
online["shaped_beta"] = 0.05
online["shaped"] = lst(adv - 0.05 * (lp_old - ref))

# ---------------------------------------------------------- token log-probs
def token_case(N, V, scale, ignore):
    lg = (torch.randn(N, V, generator=g) * scale).float().double()
    tg = torch.randint(0, V, (N,), generator=g)
    for i in ignore:
        tg[i] = -1
    dl = torch.randn(N, generator=g).float().double()
    x = lg.clone().requires_grad_(True)
    lsm = F.log_softmax(x, dim=-1)
    keep = tg >= 0
    lp = torch.zeros(N)
    lp[keep] = lsm[keep].gather(1, tg[keep].unsqueeze(1)).squeeze(1)
    (gx,) = torch.autograd.grad((lp * dl).sum(), [x])
    return dict(shape=[N, V], logits=lst(lg), targets=[int(t) for t in tg], logp=lst(lp), dlogp=lst(dl), grad=lst(gx))

tokens = {"small": token_case(7, 11, 2.0, [3]), "stress": token_case(5, 300, 1e4, [0])}

# Sequence log-probs over a right-padded layout: row b*T+t predicts token t+1.
T = 6
prompt_len = [2, 1, 3]
seq_len = [5, 6, 4]
tok_lp = (-rnd(len(seq_len) * T, scale=5)).float().double()
sums, means = [], []
for b in range(len(seq_len)):
    s = tok_lp[b * T + prompt_len[b] - 1: b * T + seq_len[b] - 1]
    sums.append(float(s.sum()))
    means.append(float(s.mean()))
tokens["sequence"] = dict(width=T, prompt_len=prompt_len, len=seq_len, token_logp=lst(tok_lp), sum=sums, mean=means)

print(json.dumps(dict(batches=BATCHES, pairwise=pairwise, reward=reward, online=online, tokens=tokens), indent=1))
