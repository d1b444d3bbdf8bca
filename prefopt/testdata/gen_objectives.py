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
                     margin=float((cr - rj).mean()), accuracy=float((cr > rj).double().mean()),
                     logp_chosen=float(torch.tensor(b["pc"]).mean()), logp_rejected=float(torch.tensor(b["pr"]).mean()))
        if kind["name"] in ("sft", "mix"):  # nll_loss: the SFT term (weight 1 in the MPO mix)
            entry["nll"] = float(-torch.tensor(b["pc"]).sum() / sum(b["lc"]))
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


# -------------------------------------------------------------- GRPO family
def nanstd(x, dim=None):
    """TRL's nanstd without NaNs: Bessel-corrected."""
    if dim is None:
        return x.std()
    return x.std(dim=dim)


K, G = 3, 3  # group size, groups
B = K * G
lens = [int(x) for x in torch.randint(1, 7, (B,), generator=g)]
T = max(lens)
# Three reward functions, one group flat after weighting.
rf = rnd(3, B, scale=2, shift=-1)
rf[:, 3:6] = torch.tensor([[0.5], [1.0], [-0.25]])
weights = [1.0, 0.5, 2.0]
rewards = (rf * torch.tensor(weights).unsqueeze(1)).sum(0)
adv = {}
grouped = rewards.view(-1, K)
mean_g = grouped.mean(dim=1).repeat_interleave(K)
std_g = nanstd(grouped, dim=1).repeat_interleave(K)
adv["group"] = (rewards - mean_g) / (std_g + 1e-4)
adv["batch"] = (rewards - mean_g) / (nanstd(rewards) + 1e-4)
adv["none"] = rewards - mean_g
# normalize_then_sum (GDPO): each function normalized within its groups,
# weighted sum, then normalized over the batch.
grouped_f = rf.t().reshape(-1, K, rf.shape[0])  # [groups, K, funcs]
mean_k = grouped_f.mean(dim=1, keepdim=True)
std_k = grouped_f.std(dim=1, keepdim=True)
reward_k = ((grouped_f - mean_k) / (std_k + 1e-4)).reshape(-1, rf.shape[0])
reward_k[3:6] = 0.0  # every function is flat on the second group
summed = (reward_k * torch.tensor(weights).unsqueeze(0)).sum(dim=1)
adv["decoupled"] = (summed - summed.mean()) / (summed.std() + 1e-4)
for k_ in ("group", "batch", "none"):
    adv[k_][3:6] = 0.0  # the flat group: exactly 0 (torch leaves ~1e-12 there)

mask = torch.zeros(B, T)
for i, l in enumerate(lens):
    mask[i, :l] = 1
logp = -rnd(B, T, scale=3) * mask
old = (logp + rnd(B, T, scale=0.8, shift=-0.4)) * mask
ref = (logp + rnd(B, T, scale=1.0, shift=-0.5)) * mask


def flat(x):
    return [float(x[i, t]) for i in range(B) for t in range(lens[i])]


def grpo_loss(kind, advantages):
    """TRL GRPOTrainer._compute_loss for one batch, no accumulation."""
    lp = logp.clone().requires_grad_(True)
    A = advantages.unsqueeze(1)
    log_ratio = lp - old
    if kind["level"] == "token":
        liw = log_ratio
    else:
        liw = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(liw)
    beta = kind["beta"]
    if beta != 0.0:
        per_token_kl = torch.exp(ref - lp) - (ref - lp) - 1
    el, eh = kind["eps_low"], kind["eps_high"]
    lt = kind["loss_type"]
    if lt == "cispo":
        clamped = torch.clamp(coef_1, max=eh).detach()
        per_token_loss = -clamped * A * lp
    else:
        coef_2 = torch.clamp(coef_1, 1 - el, 1 + eh)
        if kind.get("delta"):
            coef_1 = torch.clamp(coef_1, max=kind["delta"])
        per_token_loss = -torch.min(coef_1 * A, coef_2 * A)
    if beta != 0.0:
        per_token_loss = per_token_loss + beta * per_token_kl
    if lt == "grpo":
        loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif lt == "bnpo":
        loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0)
    elif lt == "dr_grpo":
        loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * kind["max_len"])
    else:
        loss = (per_token_loss * mask).sum() / kind.get("num_items", float(mask.sum()))
    (gl,) = torch.autograd.grad(loss, [lp])
    with torch.no_grad():
        def gmean(x):
            if x.shape[1] == 1:
                return float(x.sum() / x.shape[0])
            return float((x * mask).sum() / mask.sum())
        out = dict(kind=kind, loss=float(loss), grad=flat(gl))
        if beta != 0.0:
            out["kl"] = gmean(per_token_kl)
        c1 = torch.exp(liw)
        if lt == "cispo":
            out["clip_high"] = gmean(((c1 > eh) & (A > 0)).double())
        else:
            lo = (c1 < 1 - el) & (A < 0)
            hi = (c1 > 1 + eh) & (A > 0)
            out.update(clip_low=gmean(lo.double()), clip_high=gmean(hi.double()), clip_region=gmean((lo | hi).double()))
    return out


GRPO_KINDS = []
for lt in ["grpo", "bnpo", "dr_grpo", "dapo"]:
    for level in ["token", "sequence"]:
        GRPO_KINDS.append(dict(loss_type=lt, level=level, eps_low=0.2, eps_high=0.2, beta=0.0, scale="group"))
GRPO_KINDS += [
    dict(loss_type="dapo", level="token", eps_low=0.2, eps_high=0.28, beta=0.0, scale="group"),
    dict(loss_type="dapo", level="token", eps_low=0.1, eps_high=0.3, beta=0.04, scale="batch", num_items=2 * sum(lens)),
    dict(loss_type="grpo", level="token", eps_low=0.1, eps_high=0.1, beta=0.04, scale="group"),
    dict(loss_type="grpo", level="sequence", eps_low=3e-4, eps_high=4e-4, beta=0.0, scale="none"),
    dict(loss_type="bnpo", level="token", eps_low=0.2, eps_high=0.2, beta=0.1, scale="none", delta=1.1),
    dict(loss_type="dr_grpo", level="token", eps_low=0.2, eps_high=0.2, beta=0.02, scale="none"),
    dict(loss_type="cispo", level="token", eps_low=0.2, eps_high=1.2, beta=0.0, scale="group"),
    dict(loss_type="cispo", level="sequence", eps_low=0.2, eps_high=1.05, beta=0.05, scale="batch"),
]
grpo_cases = []
for kind in GRPO_KINDS:
    if kind["loss_type"] == "dr_grpo":
        kind["max_len"] = T + 2
    grpo_cases.append(grpo_loss(kind, adv[kind["scale"]]))
OUT["grpo"] = dict(k=K, lens=lens, reward_funcs=[lst(r) for r in rf], reward_weights=weights,
                   rewards=lst(rewards), adv={k_: lst(v) for k_, v in adv.items()},
                   logp=flat(logp), old_logp=flat(old), ref_logp=flat(ref), cases=grpo_cases)


# --------------------------------------------------------------------- KTO
def kto_case(name, policy, ref, labels, pkl, rkl, kind):
    """TRL KTOTrainer._compute_loss (loss_type kto or apo_zero_unpaired)."""
    lp = torch.tensor(policy, requires_grad=True)
    rf_ = torch.tensor(ref)
    lab = torch.tensor(labels, dtype=torch.bool)
    beta = kind["beta"]
    if kind["loss_type"] == "kto":
        kl = (torch.tensor(pkl) - torch.tensor(rkl)).mean().detach().clamp(min=0)
    else:
        kl = torch.zeros(())
    ci = torch.nonzero(lab).view(-1)
    ri = torch.nonzero(~lab).view(-1)
    clr = lp.index_select(0, ci) - rf_.index_select(0, ci)
    rlr = lp.index_select(0, ri) - rf_.index_select(0, ri)
    if kind["loss_type"] == "kto":
        cl = 1 - torch.sigmoid(beta * (clr - kl))
        rl = 1 - torch.sigmoid(beta * (kl - rlr))
    else:
        cl = 1 - torch.sigmoid(beta * clr)
        rl = torch.sigmoid(beta * rlr)
    losses = torch.cat((kind["dw"] * cl, kind["uw"] * rl), 0)
    loss = losses.nanmean()
    (gl,) = torch.autograd.grad(loss, [lp])
    nc, nr = len(ci), len(ri)
    out = dict(name=name, kind=kind, policy=policy, ref=ref, labels=labels, policy_kl=pkl, ref_kl=rkl,
               loss=float(loss), grad=lst(gl), kl=float(kl))
    out["rewards_chosen"] = float((beta * clr).sum() / nc) if nc else 0.0
    out["rewards_rejected"] = float((beta * rlr).sum() / nr) if nr else 0.0
    out["logp_chosen"] = float(lp.index_select(0, ci).sum() / nc) if nc else 0.0
    out["logp_rejected"] = float(lp.index_select(0, ri).sum() / nr) if nr else 0.0
    out["margin"] = out["rewards_chosen"] - out["rewards_rejected"] if nc and nr else 0.0
    return out


kto = []
n = 8
pol = lst(rnd(n, scale=-60))
ref_ = [p + float(x) for p, x in zip(pol, rnd(n, scale=10, shift=-4))]
labels = [True, False, True, True, False, False, True, False]
# Mismatched pairs: completions rotated by one, their log-probs drawn so the
# KL estimate is positive in one batch and negative (clamped to 0) in another.
pkl = lst(rnd(n, scale=-60))
rkl_pos = [p - float(x) for p, x in zip(pkl, rnd(n, scale=6, shift=-1))]
rkl_neg = [p + float(x) for p, x in zip(pkl, rnd(n, scale=3, shift=0.5))]
for kind in [dict(loss_type="kto", beta=0.1, dw=1.0, uw=1.0),
             dict(loss_type="kto", beta=0.5, dw=1.33, uw=0.7),
             dict(loss_type="kto", beta=10.0, dw=1.0, uw=1.0),
             dict(loss_type="apo_zero_unpaired", beta=0.2, dw=1.0, uw=2.0)]:
    kto.append(kto_case("random", pol, ref_, labels, pkl, rkl_pos, kind))
    kto.append(kto_case("negative_kl", pol, ref_, labels, pkl, rkl_neg, kind))
    kto.append(kto_case("all_desirable", pol, ref_, [True] * n, pkl, rkl_pos, kind))
# Stress: implied rewards of hundreds of nats with beta = 10.
kto.append(kto_case("stress", [-1.0, -900.0, -5.0, -300.0], [-700.0, -2.0, -5.0, -0.5], [True, True, False, False],
                    [-10.0, -20.0], [-400.0, -20.0], dict(loss_type="kto", beta=10.0, dw=1.0, uw=1.0)))
OUT["kto"] = kto

# @@MORE@@

print(json.dumps(OUT, indent=1))
