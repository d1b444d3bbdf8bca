#!/usr/bin/python3
"""Golden values for the TRL objectives of package prefopt beyond DPO:
the DPO loss_type family (losstype.go), ORPO and CPO, KTO and the GRPO
loss variants.

Run with Debian's python3-torch:
    /usr/bin/python3 gen_objectives.py > objectives.json

Every loss is written from TRL's formulas (trl/trainer/dpo_trainer.py
_compute_loss, kto_trainer.py, grpo_trainer.py _compute_loss,
trl/experimental/orpo and cpo trainers) in plain torch, float64, and
differentiated by torch autograd. Nothing here calls or copies the Go code.
"""
import json
import math
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
g = torch.Generator().manual_seed(20261130)


def rnd(*shape, scale=1.0, shift=0.0):
    return torch.rand(*shape, generator=g) * scale + shift


def lst(t):
    return [float(x) for x in t.detach().reshape(-1)]


# ------------------------------------------------------------------ batches
BATCHES = {
    # torchtune's DPO test batch.
    "torchtune": dict(pc=[-0.5, -10.0, -1.0], pr=[-0.1, -30.0, -21.0],
                      rc=[-0.5, -10.1, -0.1], rr=[-0.1, -20.1, -0.1],
                      lc=[1, 4, 2], lr=[3, 5, 7]),
}
n = 7
BATCHES["random"] = dict(
    pc=lst(rnd(n, scale=-40)), pr=lst(rnd(n, scale=-40)),
    rc=lst(rnd(n, scale=-40)), rr=lst(rnd(n, scale=-40)),
    lc=[int(x) for x in torch.randint(1, 50, (n,), generator=g)],
    lr=[int(x) for x in torch.randint(1, 50, (n,), generator=g)])
# Log-prob gaps of hundreds; used with beta = 10.
BATCHES["stress"] = dict(
    pc=[-1.0, -900.0, -5.0, -300.0], pr=[-800.0, -2.0, -5.0, -300.5],
    rc=[-3.0, -100.0, -5.0, -300.0], rr=[-2.0, -700.0, -5.0, -300.0],
    lc=[1, 2, 3, 4], lr=[1, 1, 1, 1])


class RunningMoments:
    """TRL's RunningMoments (trl/trainer/utils.py before the DPO refactor)."""

    def __init__(self):
        self.mean, self.var, self.count = 0.0, 1.0, 1e-24

    def update(self, xs):
        xs_count = xs.numel()
        xs_var, xs_mean = torch.var_mean(xs, unbiased=False)
        delta = xs_mean - self.mean
        tot = self.count + xs_count
        old_sum = self.var * self.count + delta ** 2 * self.count * xs_count / tot
        self.mean += float(delta * xs_count / tot)
        self.var = float((old_sum + xs_var * xs_count) / tot)
        self.count = tot


RUNNING = {}


def dpo_family(kind, pc, pr, b):
    """Per-pair losses in TRL's loss_type vocabulary (f_divergence reverse_kl)."""
    rc, rr = torch.tensor(b["rc"]), torch.tensor(b["rr"])
    name, beta = kind["name"], kind["beta"]
    crt, rjt = pc - rc, pr - rr  # chosen_logratios, rejected_logratios
    delta = crt - rjt
    if name == "sigmoid":
        return -F.logsigmoid(beta * delta)
    if name == "exo_pair":
        eps = torch.tensor(kind["eps"])
        z = beta * delta
        return (torch.sigmoid(z) * (F.logsigmoid(z) - torch.log1p(-eps))
                + torch.sigmoid(-z) * (F.logsigmoid(-z) - torch.log(eps)))
    if name == "nca_pair":
        c, r = beta * crt, beta * rjt
        return -F.logsigmoid(c) - 0.5 * F.logsigmoid(-c) - 0.5 * F.logsigmoid(-r)
    if name == "bco_pair":
        key = json.dumps(kind, sort_keys=True)
        run = RUNNING.setdefault(key, RunningMoments())
        c, r = beta * crt, beta * rjt
        run.update(torch.cat((c, r)).mean().detach().reshape(1))
        d = run.mean
        return -F.logsigmoid(c - d) - F.logsigmoid(-(r - d))
    if name == "sppo_hard":
        return (crt - 0.5 / beta) ** 2 + (rjt + 0.5 / beta) ** 2
    if name in ("aot", "aot_unpaired"):
        ls = kind["eps"]
        if name == "aot":
            x, _ = torch.sort(pc - pr, dim=0, stable=True)
            y, _ = torch.sort(rc - rr, dim=0, stable=True)
        else:
            x, _ = torch.sort(crt, dim=0, stable=True)
            y, _ = torch.sort(rjt, dim=0, stable=True)
        d = x - y
        return -F.logsigmoid(beta * d) * (1 - ls) - F.logsigmoid(-beta * d) * ls
    if name == "apo_zero":
        return 1 - torch.sigmoid(beta * crt) + torch.sigmoid(beta * rjt)
    if name == "apo_down":
        return torch.sigmoid(beta * crt) + 1 - torch.sigmoid(beta * delta)
    if name == "discopop":
        tau = kind["tau"]
        z = beta * delta
        m = torch.sigmoid(z / tau)
        # TRL writes exp(-z) * m; the same product as one exponential keeps
        # the stress batch (z = -1e4) finite instead of inf * 0.
        return -F.logsigmoid(z) * (1 - m) + torch.exp(-z + F.logsigmoid(z / tau))
    if name == "sft":
        lc = sum(b["lc"])
        return (-pc.sum() / lc).expand(pc.shape[0])
    raise ValueError(name)


LOSS_TYPES = [
    dict(name="exo_pair", beta=0.1, eps=1e-3),
    dict(name="exo_pair", beta=10.0, eps=0.2),
    dict(name="nca_pair", beta=0.1),
    dict(name="nca_pair", beta=10.0),
    dict(name="bco_pair", beta=0.1),
    dict(name="bco_pair", beta=10.0),
    dict(name="sppo_hard", beta=0.1),
    dict(name="sppo_hard", beta=10.0),
    dict(name="aot", beta=0.1, eps=0.0),
    dict(name="aot", beta=10.0, eps=0.2),
    dict(name="aot_unpaired", beta=0.5, eps=0.1),
    dict(name="aot_unpaired", beta=10.0, eps=0.0),
    dict(name="apo_zero", beta=0.1),
    dict(name="apo_zero", beta=10.0),
    dict(name="apo_down", beta=0.1),
    dict(name="apo_down", beta=10.0),
    dict(name="discopop", beta=0.1, tau=0.05),
    dict(name="discopop", beta=10.0, tau=0.05),
    dict(name="discopop", beta=0.5, tau=2.0),
    dict(name="sft", beta=0.1),
    # MPO: TRL's loss_type=["sigmoid", "bco_pair", "sft"], loss_weights=[0.8, 0.2, 1.0].
    dict(name="mix", beta=0.1, terms=[dict(name="sigmoid", beta=0.1, tag="mpo"),
                                      dict(name="bco_pair", beta=0.1, tag="mpo")] + [dict(name="sft", beta=0.1)],
         weights=[0.8, 0.2, 1.0]),
]

pairwise = []
for bname, b in BATCHES.items():
    for kind in LOSS_TYPES:
        if kind["name"] == "discopop" and kind["tau"] > 1 and bname == "stress":
            continue  # the loss is e^(±5000): not a float64, an error in Go
        pc = torch.tensor(b["pc"], requires_grad=True)
        pr = torch.tensor(b["pr"], requires_grad=True)
        if kind["name"] == "mix":
            loss = sum(w * dpo_family(t, pc, pr, b).mean() for t, w in zip(kind["terms"], kind["weights"]))
        else:
            loss = dpo_family(kind, pc, pr, b).mean()
        gc, gr = torch.autograd.grad(loss, [pc, pr], allow_unused=True)
        gr = torch.zeros_like(pr) if gr is None else gr
        gc = torch.zeros_like(pc) if gc is None else gc
        beta = kind["beta"]
        cr = beta * (torch.tensor(b["pc"]) - torch.tensor(b["rc"]))
        rj = beta * (torch.tensor(b["pr"]) - torch.tensor(b["rr"]))
        entry = dict(batch=bname, kind=kind, loss=float(loss), grad_chosen=lst(gc), grad_rejected=lst(gr),
                     rewards_chosen=float(cr.mean()), rewards_rejected=float(rj.mean()),
                     margin=float((cr - rj).mean()), accuracy=float((cr > rj).double().mean()))
        if kind["name"] == "bco_pair":
            entry["shift"] = RUNNING[json.dumps(kind, sort_keys=True)].mean
        pairwise.append(entry)

OUT = dict(batches=BATCHES, pairwise=pairwise)


# ------------------------------------------------------------ ORPO and CPO
BATCHES["nearzero"] = dict(  # log-probs near 0 (ORPO's log1mexp) and far below
    pc=[-1e-9, -3e-6, -0.01, -700.0], pr=[-2e-12, -0.5, -1e-7, -1.0],
    rc=[0.0] * 4, rr=[0.0] * 4, lc=[1, 3, 1, 2], lr=[1, 1, 2, 1])


def log1mexp(x):
    """TRL's log1mexp (trl/experimental/orpo/orpo_trainer.py)."""
    t = -0.6931471805599453
    return torch.where(x < t, torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def pair_entry(bname, kind, loss, pc, pr, cr, rj, lpc, lpr, **extra):
    gc, gr = torch.autograd.grad(loss, [pc, pr])
    e = dict(batch=bname, kind=kind, loss=float(loss), grad_chosen=lst(gc), grad_rejected=lst(gr),
             rewards_chosen=float(cr.mean()), rewards_rejected=float(rj.mean()),
             margin=float((cr - rj).mean()), accuracy=float((cr > rj).double().mean()),
             logp_chosen=float(lpc.mean()), logp_rejected=float(lpr.mean()))
    e.update(extra)
    return e


orpo = []
for bname in ["torchtune", "random", "stress", "nearzero"]:
    b = BATCHES[bname]
    for beta in [0.1, 1.0, 10.0]:
        pc = torch.tensor(b["pc"], requires_grad=True)
        pr = torch.tensor(b["pr"], requires_grad=True)
        lc, lr = torch.tensor(b["lc"], dtype=torch.float64), torch.tensor(b["lr"], dtype=torch.float64)
        ac, ar = pc / lc, pr / lr  # average_log_prob=True
        log_odds = (ac - ar) - (log1mexp(ac) - log1mexp(ar))
        ratio = F.logsigmoid(log_odds)
        nll = -pc.sum() / lc.sum()
        loss = nll - (beta * ratio).mean()
        orpo.append(pair_entry(bname, dict(name="orpo", beta=beta), loss, pc, pr, beta * ac, beta * ar, ac, ar,
                               nll=float(nll), log_odds_ratio=float(ratio.mean()), log_odds_chosen=float(log_odds.mean())))

cpo = []
CPO_KINDS = [
    dict(name="sigmoid", beta=0.1, eps=0.0, alpha=1.0),
    dict(name="sigmoid", beta=10.0, eps=0.2, alpha=0.5),
    dict(name="sigmoid", beta=0.5, eps=0.0, alpha=0.0),
    dict(name="simpo", beta=2.0, eps=0.0, alpha=1.0, gamma=0.5),
    dict(name="simpo", beta=10.0, eps=0.1, alpha=0.0, gamma=1.4),
]
for bname in ["torchtune", "random", "stress"]:
    b = BATCHES[bname]
    for kind in CPO_KINDS:
        pc = torch.tensor(b["pc"], requires_grad=True)
        pr = torch.tensor(b["pr"], requires_grad=True)
        lc, lr = torch.tensor(b["lc"], dtype=torch.float64), torch.tensor(b["lr"], dtype=torch.float64)
        beta, ls = kind["beta"], kind["eps"]
        if kind["name"] == "simpo":
            cl, rl = pc / lc, pr / lr
            logits = (cl - rl) - kind["gamma"] / beta
        else:
            cl, rl = pc, pr
            logits = cl - rl
        losses = -F.logsigmoid(beta * logits) * (1 - ls) - F.logsigmoid(-beta * logits) * ls
        nll = -pc.sum() / lc.sum() if kind["alpha"] != 0 else torch.tensor(0.0)
        loss = losses.mean() + kind["alpha"] * nll
        cpo.append(pair_entry(bname, kind, loss, pc, pr, beta * cl, beta * rl, cl, rl, nll=float(nll)))
OUT.update(orpo=orpo, cpo=cpo)

# @@MORE@@

print(json.dumps(OUT, indent=1))
