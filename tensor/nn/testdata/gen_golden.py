#!/usr/bin/env python3
"""Independent fixtures for tensor/nn, written without the Go code.

1. fixture.safetensors: a hand-written safetensors file (struct + json, per
   the format spec: u64 little-endian header length, JSON header with
   dtype/shape/data_offsets, raw little-endian data) holding F32, F16, BF16,
   F64, empty and scalar tensors plus metadata; fixture.json lists the values.
2. tiny.safetensors + tiny.json: a small TinyLM in PyTorch (float64 math,
   float32 weights), its logits and cross-entropy on a batch, every
   parameter's gradient, and the weights after two AdamW steps with gradient
   clipping (decay on matrices only) — the Go model must match all of them.

    /usr/bin/python3 gen_golden.py            # writes the files above
    /usr/bin/python3 gen_golden.py verify F   # checks a Go-written file F by hand
"""
import json
import math
import struct
import sys

import numpy as np
import torch


def write_safetensors(path, tensors, metadata=None):
    """tensors: list of (name, dtype, shape, raw little-endian bytes)."""
    header, off, blob = {}, 0, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)


def read_safetensors(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8:8 + n])
    data = b[8 + n:]
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        assert e["dtype"] == "F32", e
        lo, hi = e["data_offsets"]
        cnt = int(np.prod(e["shape"])) if e["shape"] else 1
        assert hi - lo == 4 * cnt
        out[name] = np.frombuffer(data[lo:hi], dtype="<f4").reshape(e["shape"])
    return out, meta


def bf16_bits(x):
    # round-to-nearest-even of the float32 bits, as the format defines
    u = np.asarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2")


def fixture():
    a = (np.arange(6, dtype=np.float32) * 0.5 - 1).reshape(2, 3)
    f16 = np.array([1, -2, 0.5, 65504, 6.1035156e-05], dtype="<f2")
    bfv = np.array([[1.0, -3.5], [1e30, -0.0078125]], dtype=np.float32)
    bfb = bf16_bits(bfv)
    f64 = np.array([math.pi, -1e-3], dtype="<f8")
    tensors = [
        ("a", "F32", a.shape, a.astype("<f4").tobytes()),
        ("half", "F16", f16.shape, f16.tobytes()),
        ("brain", "BF16", bfv.shape, bfb.tobytes()),
        ("empty", "F32", (0, 4), b""),
        ("double", "F64", f64.shape, f64.tobytes()),
        ("scalar", "F32", (), np.array(3.25, dtype="<f4").tobytes()),
    ]
    write_safetensors("fixture.safetensors", tensors, {"format": "fixture", "note": "hand-written"})
    bf_back = (bfb.astype(np.uint32) << 16).view(np.float32)
    want = {
        "a": {"shape": [2, 3], "data": a.ravel().tolist()},
        "half": {"shape": [5], "data": f16.astype(np.float64).tolist()},
        "brain": {"shape": [2, 2], "data": bf_back.astype(np.float64).ravel().tolist()},
        "empty": {"shape": [0, 4], "data": []},
        "double": {"shape": [2], "data": f64.astype(np.float32).astype(np.float64).tolist()},
        "scalar": {"shape": [], "data": [3.25]},
    }
    json.dump({"order": [t[0] for t in tensors], "metadata": {"format": "fixture", "note": "hand-written"},
               "tensors": want}, open("fixture.json", "w"), indent=1)


# ---- TinyLM reference ------------------------------------------------------
V, D, L, H, CTX, HID, EPS, BASE = 11, 8, 2, 2, 6, 12, 1e-6, 10000.0
B, T = 2, 5
LR, BETAS, ADAM_EPS, WD, CLIP = 1e-2, (0.9, 0.999), 1e-8, 0.1, 0.5


def names():
    ns = [("embed.weight", (V, D))]
    for i in range(L):
        p = f"layers.{i}."
        ns += [(p + "norm1.weight", (D,)), (p + "attn.q.weight", (D, D)), (p + "attn.k.weight", (D, D)),
               (p + "attn.v.weight", (D, D)), (p + "attn.o.weight", (D, D)), (p + "norm2.weight", (D,)),
               (p + "mlp.gate.weight", (HID, D)), (p + "mlp.up.weight", (HID, D)), (p + "mlp.down.weight", (D, HID))]
    return ns + [("norm.weight", (D,)), ("head.weight", (V, D))]


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x):  # x [B, H, T, Dh], rotate-half layout
    t, dh = x.shape[-2], x.shape[-1]
    h = dh // 2
    ang = torch.arange(t, dtype=torch.float64)[:, None] * BASE ** (-2 * torch.arange(h, dtype=torch.float64) / dh)
    c, s = torch.cos(ang), torch.sin(ang)
    return torch.cat([x[..., :h] * c - x[..., h:] * s, x[..., h:] * c + x[..., :h] * s], -1)


def forward(P, idx):
    x = P["embed.weight"][idx]  # [B, T, D]
    dh = D // H
    mask = torch.triu(torch.full((T, T), -math.inf, dtype=torch.float64), 1)
    for i in range(L):
        p = f"layers.{i}."
        n = rms(x, P[p + "norm1.weight"])
        sp = lambda w: (n @ w.T).view(B, T, H, dh).transpose(1, 2)
        q, k, v = rope(sp(P[p + "attn.q.weight"])), rope(sp(P[p + "attn.k.weight"])), sp(P[p + "attn.v.weight"])
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh) + mask, -1) @ v
        x = x + a.transpose(1, 2).reshape(B, T, D) @ P[p + "attn.o.weight"].T
        n = rms(x, P[p + "norm2.weight"])
        g, u = n @ P[p + "mlp.gate.weight"].T, n @ P[p + "mlp.up.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ P[p + "mlp.down.weight"].T
    return rms(x, P["norm.weight"]) @ P["head.weight"].T


def tiny():
    rng = np.random.default_rng(81)
    P, raw = {}, []
    for name, shape in names():
        if name.endswith("norm1.weight") or name.endswith("norm2.weight") or name == "norm.weight":
            w = (1 + 0.1 * rng.standard_normal(shape)).astype(np.float32)
        else:
            w = (0.3 * rng.standard_normal(shape)).astype(np.float32)
        raw.append((name, "F32", shape, w.astype("<f4").tobytes()))
        P[name] = torch.tensor(w.astype(np.float64), requires_grad=True)
    meta = {"format": "posttrain.TinyLM", "vocab": str(V), "d_model": str(D), "layers": str(L), "heads": str(H),
            "context": str(CTX), "hidden": str(HID), "eps": "1e-06", "rope": "10000"}
    write_safetensors("tiny.safetensors", raw, meta)
    seq = rng.integers(0, V, size=(B, T + 1))
    inp, tgt = torch.tensor(seq[:, :-1]), torch.tensor(seq[:, 1:])
    logits = forward(P, inp).reshape(B * T, V)
    loss = torch.nn.functional.cross_entropy(logits, tgt.reshape(-1))
    loss.backward()
    grads = {n: P[n].grad.numpy().ravel().tolist() for n, _ in names()}
    out = {"tokens": seq[:, :-1].ravel().tolist(), "targets": seq[:, 1:].ravel().tolist(), "batch": B,
           "logits": logits.detach().numpy().ravel().tolist(), "loss": loss.item(), "grads": grads}
    # two AdamW steps, decay on matrices only, global-norm clipping
    for t in P.values():
        t.grad = None
    decay = [P[n] for n, s in names() if len(s) >= 2]
    nodecay = [P[n] for n, s in names() if len(s) < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=ADAM_EPS)
    norms = []
    for _ in range(2):
        opt.zero_grad()
        l = torch.nn.functional.cross_entropy(forward(P, inp).reshape(B * T, V), tgt.reshape(-1))
        l.backward()
        norms.append(torch.nn.utils.clip_grad_norm_(list(P.values()), CLIP).item())
        opt.step()
    out["adamw"] = {"lr": LR, "weight_decay": WD, "clip": CLIP, "grad_norms": norms,
                    "weights": {n: P[n].detach().numpy().ravel().tolist() for n, _ in names()}}
    json.dump(out, open("tiny.json", "w"))


if __name__ == "__main__":
    torch.set_default_dtype(torch.float64)
    if len(sys.argv) == 3 and sys.argv[1] == "verify":
        ts, meta = read_safetensors(sys.argv[2])
        print("ok:", len(ts), "tensors;", "metadata", meta)
        for k, v in list(ts.items())[:3]:
            print(k, v.shape, v.ravel()[:4])
    else:
        fixture()
        tiny()
