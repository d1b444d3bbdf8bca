#!/usr/bin/env python3
"""PEFT LoRA adapters for the tiny smol_f32 checkpoint, and the logits the
adapted model gives, for hf.LoadAdapter's test.

The reference is float64 PyTorch written from PEFT's lora.Linear (no peft
installed, nothing imported from the Go side):

  * result = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling, with
    lora_A.weight [r, in], lora_B.weight [out, r], dropout the identity in
    eval mode;
  * scaling = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora;
  * the state dict is saved with the adapter name removed:
    base_model.model.model.layers.N.self_attn.q_proj.lora_A.weight;
  * target_modules name the projections (q_proj … down_proj);
    layers_to_transform restricts them to some decoder layers.

The decoder is the float64 Llama forward pass of transformers'
modeling_llama.py (RMSNorm, rotate_half RoPE, repeat_kv, SwiGLU, tied
head), with RMSNorm, rotate_half and the safetensors writer taken from
../gen_models.py.

Two adapters, with B drawn nonzero so the update shows:

  all_linear/  r=4, lora_alpha=8, every projection, layers_to_transform [0, 2], F32
  rslora_f16/  r=3, lora_alpha=5, use_rslora, q/k/v/o_proj on all layers, F16

    /usr/bin/python3 gen_adapter.py   # rewrites both directories and reference.json
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from gen_models import rms, rotate_half, write_safetensors  # noqa: E402  (the decoder's pieces)
MODEL = os.path.join(HERE, "..", "smol_f32")
IDS = [0, 5, 9, 13, 2, 95, 40, 41, 42, 7, 88, 3]


def read_safetensors(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    out = {}
    for k, v in h.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v
        lo, hi = v["data_offsets"]
        a = np.frombuffer(b[8 + n + lo:8 + n + hi], dtype="<f4").astype(np.float64)
        out[k] = torch.from_numpy(a.reshape(v["shape"]).copy())
    return out


def forward(cfg, W, lora, scaling, ids):
    hs, nh, nkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = hs // nh
    eps = cfg["rms_norm_eps"]
    theta = cfg["rope_parameters"]["rope_theta"]
    T = len(ids)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)

    def lin(name, v):
        y = v @ W[name + ".weight"].T
        key = "base_model.model." + name
        if key + ".lora_A.weight" in lora:
            a, b = lora[key + ".lora_A.weight"], lora[key + ".lora_B.weight"]
            y = y + (v @ a.T) @ b.T * scaling
        return y

    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms(x, W[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", h).view(T, nh, hd).transpose(0, 1)
        k = lin(p + "self_attn.k_proj", h).view(T, nkv, hd).transpose(0, 1)
        v = lin(p + "self_attn.v_proj", h).view(T, nkv, hd).transpose(0, 1)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        g = nh // nkv
        k = k[:, None].expand(nkv, g, T, hd).reshape(nh, T, hd)
        v = v[:, None].expand(nkv, g, T, hd).reshape(nh, T, hd)
        s = q @ k.transpose(1, 2) * hd ** -0.5 + mask
        o = (torch.softmax(s, dim=-1) @ v).transpose(0, 1).reshape(T, nh * hd)
        x = x + lin(p + "self_attn.o_proj", o)
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(lin(p + "mlp.gate_proj", h)) * lin(p + "mlp.up_proj", h))
    x = rms(x, W["model.norm.weight"], eps)
    return x @ W["model.embed_tokens.weight"].T


def make(name, cfg, W, r, alpha, rslora, targets, layers, dtype, seed):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    shapes = {"q_proj": ("self_attn", W["model.layers.0.self_attn.q_proj.weight"].shape),
              "k_proj": ("self_attn", W["model.layers.0.self_attn.k_proj.weight"].shape),
              "v_proj": ("self_attn", W["model.layers.0.self_attn.v_proj.weight"].shape),
              "o_proj": ("self_attn", W["model.layers.0.self_attn.o_proj.weight"].shape),
              "gate_proj": ("mlp", W["model.layers.0.mlp.gate_proj.weight"].shape),
              "up_proj": ("mlp", W["model.layers.0.mlp.up_proj.weight"].shape),
              "down_proj": ("mlp", W["model.layers.0.mlp.down_proj.weight"].shape)}
    lora, stored = {}, []
    for i in range(cfg["num_hidden_layers"]):
        if layers is not None and i not in layers:
            continue
        for t in targets:
            blk, (out, inp) = shapes[t]
            key = f"base_model.model.model.layers.{i}.{blk}.{t}"
            # kaiming_uniform_(a=sqrt(5)) bound for A; B nonzero (a trained adapter)
            a = (torch.rand((r, inp), generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(inp)
            b = torch.randn((out, r), generator=gen, dtype=torch.float64) * 0.2
            for ab, val in (("A", a), ("B", b)):
                if dtype == "F32":
                    arr = val.numpy().astype("<f4")
                else:
                    arr = val.numpy().astype("<f2")
                lora[f"{key}.lora_{ab}.weight"] = torch.from_numpy(arr.astype(np.float64))
                stored.append((f"{key}.lora_{ab}.weight", dtype, arr.shape, arr.tobytes()))
    write_safetensors(os.path.join(d, "adapter_model.safetensors"), stored)
    conf = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": "smol_f32",
            "r": r, "lora_alpha": alpha, "lora_dropout": 0.05, "use_rslora": rslora,
            "target_modules": targets, "layers_to_transform": layers, "bias": "none",
            "fan_in_fan_out": False, "use_dora": False, "modules_to_save": None,
            "rank_pattern": {}, "alpha_pattern": {}, "init_lora_weights": True,
            "inference_mode": True, "revision": None, "layers_pattern": None}
    with open(os.path.join(d, "adapter_config.json"), "w") as f:
        json.dump(conf, f, indent=2)
    scaling = alpha / math.sqrt(r) if rslora else alpha / r
    return forward(cfg, W, lora, scaling, IDS).flatten().tolist()


def main():
    with open(os.path.join(MODEL, "config.json")) as f:
        cfg = json.load(f)
    W = read_safetensors(os.path.join(MODEL, "model.safetensors"))
    ref = {"ids": IDS, "base": forward(cfg, W, {}, 0, IDS).flatten().tolist()}
    ref["all_linear"] = make("all_linear", cfg, W, 4, 8, False,
                             ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
                             [0, 2], "F32", 11)
    ref["rslora_f16"] = make("rslora_f16", cfg, W, 3, 5, True, ["q_proj", "k_proj", "v_proj", "o_proj"],
                             None, "F16", 12)
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
