#!/usr/bin/env python3
"""Golden values for tensor/autograd ops, from PyTorch (float64) autograd.

Independent of the Go code under test: each op is written here with plain
torch functions. Inputs are drawn in float64, rounded to float32, and stored,
so Go and torch see identical inputs. For every case the file holds the op's
output and the gradients of L = sum(w * out) for stored weights w.

Run with Debian's python3 (the one that imports torch):
    /usr/bin/python3 gen_golden.py > golden.json
"""
import json
import math

import numpy as np
import torch

torch.set_default_dtype(torch.float64)
rng = np.random.default_rng(8)


def arr(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32).astype(np.float64)


def rope_ref(x, p0, base):
    t, dh = x.shape[-2], x.shape[-1]
    h = dh // 2
    pos = torch.arange(p0, p0 + t, dtype=torch.float64)[:, None]
    inv = base ** (-2 * torch.arange(h, dtype=torch.float64) / dh)
    ang = pos * inv[None, :]
    c, s = torch.cos(ang), torch.sin(ang)
    x0, x1 = x[..., :h], x[..., h:]
    return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], -1)


def causal_softmax_ref(x, scale):
    tq, tk = x.shape[-2], x.shape[-1]
    i = torch.arange(tq)[:, None] + (tk - tq)
    j = torch.arange(tk)[None, :]
    z = torch.where(j <= i, x * scale, torch.tensor(-math.inf))
    return torch.softmax(z, -1)


def rms_ref(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


cases = []


def case(name, inputs, fn, **params):
    ts = {k: torch.tensor(v, requires_grad=True) for k, v in inputs.items()}
    out = fn(**ts)
    w = arr(*out.shape) if out.dim() > 0 else np.array(rng.standard_normal(), dtype=np.float32).astype(np.float64)
    (out * torch.tensor(w)).sum().backward()
    cases.append({
        "name": name,
        "params": params,
        "inputs": {k: {"shape": list(v.shape), "data": v.ravel().tolist()} for k, v in inputs.items()},
        "out": {"shape": list(out.shape), "data": out.detach().numpy().ravel().tolist()},
        "w": np.asarray(w).ravel().tolist(),
        "grads": {k: t.grad.numpy().ravel().tolist() for k, t in ts.items()},
    })


case("matmul", {"a": arr(3, 4), "b": arr(4, 5)}, lambda a, b: a @ b)
case("matmul_t", {"a": arr(3, 4), "b": arr(5, 4)}, lambda a, b: a @ b.T)
case("bmm", {"a": arr(2, 3, 4, 5), "b": arr(2, 3, 5, 6)}, lambda a, b: a @ b)
case("bmm_t", {"a": arr(2, 3, 4, 5), "b": arr(2, 3, 6, 5)}, lambda a, b: a @ b.transpose(-1, -2))
case("add_same", {"a": arr(3, 4), "b": arr(3, 4)}, lambda a, b: a + b)
case("add_row", {"a": arr(2, 3, 4), "b": arr(4)}, lambda a, b: a + b)
case("mul", {"a": arr(3, 4), "b": arr(3, 4)}, lambda a, b: a * b)
case("scale", {"a": arr(3, 4)}, lambda a: a * -1.5, s=-1.5)
case("silu", {"a": arr(13, scale=3)}, lambda a: torch.nn.functional.silu(a))
case("swiglu", {"g": arr(3, 4, scale=2), "u": arr(3, 4)}, lambda g, u: torch.nn.functional.silu(g) * u)
case("gelu", {"a": arr(13, scale=3)}, lambda a: torch.nn.functional.gelu(a))
case("sum", {"a": arr(3, 4)}, lambda a: a.sum())
case("mean", {"a": arr(3, 4)}, lambda a: a.mean())
case("rmsnorm", {"x": arr(3, 8), "w": arr(8)}, lambda x, w: rms_ref(x, w, 1e-6), eps=1e-6)
case("layernorm", {"x": arr(3, 8, scale=2), "w": arr(8), "b": arr(8)},
     lambda x, w, b: torch.nn.functional.layer_norm(x, (8,), w, b, 1e-5), eps=1e-5)
case("transpose12", {"x": arr(2, 3, 4, 5)}, lambda x: x.transpose(1, 2).contiguous())
case("permute201", {"x": arr(2, 3, 4)}, lambda x: x.permute(2, 0, 1).contiguous())
case("causal_softmax", {"x": arr(2, 3, 5, 5, scale=2)}, lambda x: causal_softmax_ref(x, 0.7), scale=0.7)
case("causal_softmax_offset", {"x": arr(2, 2, 3, 5, scale=2)}, lambda x: causal_softmax_ref(x, 0.7), scale=0.7)
case("rope", {"x": arr(2, 2, 6, 8)}, lambda x: rope_ref(x, 0, 10000.0), p0=0, base=10000.0)
case("rope_offset", {"x": arr(2, 6, 8)}, lambda x: rope_ref(x, 3, 100.0), p0=3, base=100.0)
ids = [3, 0, 3, 6, 1]
case("embedding", {"table": arr(7, 4)}, lambda table: table[torch.tensor(ids)], ids=ids)
tg = [2, -1, 0, 6, 3]
case("cross_entropy", {"logits": arr(5, 7, scale=2)},
     lambda logits: torch.nn.functional.cross_entropy(logits, torch.tensor(tg), ignore_index=-1), targets=tg)
case("cross_entropy_1e4", {"logits": arr(5, 7, scale=1e4)},
     lambda logits: torch.nn.functional.cross_entropy(logits, torch.tensor(tg), ignore_index=-1), targets=tg)
case("log_probs", {"logits": arr(5, 7, scale=2)},
     lambda logits: torch.where(torch.tensor(tg) >= 0,
                                torch.log_softmax(logits, -1).gather(1, torch.tensor(tg).clamp(min=0)[:, None])[:, 0],
                                torch.tensor(0.0)), targets=tg)

def attention_ref(q, k, v, batch, heads, kv_heads, base):
    """Causal grouped-query attention with RoPE, as transformers' Llama
    computes it: heads split, rotated, key/value heads repeated in blocks
    (repeat_kv), scaled scores, causal softmax, heads merged."""
    n, qd = q.shape
    dh, t = qd // heads, n // batch
    q = rope_ref(q.view(batch, t, heads, dh).transpose(1, 2), 0, base)
    k = rope_ref(k.view(batch, t, kv_heads, dh).transpose(1, 2), 0, base)
    v = v.view(batch, t, kv_heads, dh).transpose(1, 2)
    k = k.repeat_interleave(heads // kv_heads, 1)
    v = v.repeat_interleave(heads // kv_heads, 1)
    p = causal_softmax_ref(q @ k.transpose(-1, -2), dh ** -0.5)
    return (p @ v).transpose(1, 2).reshape(n, qd)


# 70 positions cross Attention's 64-position blocks.
case("attention_gqa", {"q": arr(2 * 70, 3 * 4), "k": arr(2 * 70, 4), "v": arr(2 * 70, 4)},
     lambda q, k, v: attention_ref(q, k, v, 2, 3, 1, 100.0), batch=2, heads=3, kv_heads=1, base=100.0)
case("attention_mha", {"q": arr(5, 2 * 6, scale=2), "k": arr(5, 2 * 6, scale=2), "v": arr(5, 2 * 6)},
     lambda q, k, v: attention_ref(q, k, v, 1, 2, 2, 10000.0), batch=1, heads=2, kv_heads=2, base=10000.0)



def packed_attention_ref(q, k, v, starts, heads, kv_heads, base):
    """Attention over packed sequences, the way variable-length attention
    is usually masked: each position carries its document's id and its
    position within the document; a query sees the keys of its own
    document at or before it, and RoPE uses the in-document positions."""
    batch = len(starts)
    n, qd = q.shape
    dh, t = qd // heads, n // batch
    h = dh // 2
    doc = torch.zeros(batch, t, dtype=torch.long)
    pos = torch.zeros(batch, t, dtype=torch.float64)
    for b, st in enumerate(starts):
        bounds = list(st) + [t]
        for d in range(len(st)):
            doc[b, bounds[d]:bounds[d + 1]] = d
            pos[b, bounds[d]:bounds[d + 1]] = torch.arange(bounds[d + 1] - bounds[d], dtype=torch.float64)
    inv = base ** (-2 * torch.arange(h, dtype=torch.float64) / dh)
    ang = pos[:, None, :, None] * inv  # [B, 1, T, h]
    c, s = torch.cos(ang), torch.sin(ang)

    def rot(x):
        x0, x1 = x[..., :h], x[..., h:]
        return torch.cat([x0 * c - x1 * s, x1 * c + x0 * s], -1)

    q = rot(q.view(batch, t, heads, dh).transpose(1, 2))
    k = rot(k.view(batch, t, kv_heads, dh).transpose(1, 2))
    v = v.view(batch, t, kv_heads, dh).transpose(1, 2)
    k = k.repeat_interleave(heads // kv_heads, 1)
    v = v.repeat_interleave(heads // kv_heads, 1)
    i = torch.arange(t)
    allowed = (i[None, :, None] >= i[None, None, :]) & (doc[:, :, None] == doc[:, None, :])  # [B, Tq, Tk]
    z = torch.where(allowed[:, None], (q @ k.transpose(-1, -2)) * dh ** -0.5, torch.tensor(-math.inf))
    return (torch.softmax(z, -1) @ v).transpose(1, 2).reshape(n, qd)


# Documents crossing the 64-position blocks, blocks starting at one and
# inside one, one-token documents.
st = [[0, 5, 64, 65], [0, 63]]
case("attention_packed", {"q": arr(2 * 66, 2 * 4), "k": arr(2 * 66, 4), "v": arr(2 * 66, 4)},
     lambda q, k, v: packed_attention_ref(q, k, v, st, 2, 1, 100.0), starts=st, heads=2, kv_heads=1, base=100.0)

print(json.dumps({"generator": "gen_golden.py (torch %s, float64)" % torch.__version__, "cases": cases}))
