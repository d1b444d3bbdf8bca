#!/usr/bin/env python3
"""Tiny Hugging Face checkpoints and their reference logits, for package hf.

The reference is a float64 PyTorch re-implementation of transformers'
LlamaForCausalLM / Qwen2ForCausalLM forward pass, written from the modeling
code (modeling_llama.py, modeling_qwen2.py, modeling_rope_utils.py) without
importing transformers and without looking at the Go code:

  * RMSNorm: x * rsqrt(mean(x^2) + eps) * weight
  * RoPE "rotate_half": q*cos + cat(-q[d/2:], q[:d/2])*sin, with
    cos/sin = cat(freqs, freqs), freqs = position * inv_freq
  * inv_freq = 1 / theta^(arange(0, d, 2)/d), then rope scaling:
    linear divides by factor; llama3 keeps wavelengths < orig/high_freq_factor,
    divides those > orig/low_freq_factor by factor, and in between mixes
    (1-s)*f/factor + s*f with s = (orig/wavelen - low)/(high - low)
  * grouped-query attention: repeat_kv repeats each key/value head
    n_heads/n_kv_heads times in a block (head h reads kv head h // groups)
  * scores scaled by head_dim^-0.5, causal mask, softmax
  * SwiGLU MLP: down(silu(gate(x)) * up(x)); q/k/v bias for Qwen2
  * lm_head tied to embed_tokens when tie_word_embeddings

Each checkpoint is stored as the loader reads it (the weights the reference
uses are the stored, rounded ones):

  llama_bf16/  LlamaForCausalLM, BF16, two shards + model.safetensors.index.json,
               GQA 4/2, explicit head_dim 24 != hidden/heads, llama3 rope_scaling
  smol_f32/    LlamaForCausalLM (SmolLM2-like), F32, tied, GQA 6/2, rope given
               as transformers v5 rope_parameters, eos_token_id a list
  qwen_f16/    Qwen2ForCausalLM, F16, q/k/v bias, untied, legacy
               rope_scaling {"type": "linear"}

reference.json holds, per directory, the token ids, the logits [T, vocab]
and a greedy continuation computed by repeated full forward passes.

    /usr/bin/python3 gen_models.py      # rewrites the three directories and reference.json
"""
import json
import math
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def inv_freq(cfg, head_dim):
    rope = cfg.get("rope_parameters") or {}
    theta = rope.get("rope_theta", cfg.get("rope_theta", 10000.0))
    scaling = cfg.get("rope_scaling") or rope
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    f = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
    if kind == "linear":
        f = f / scaling["factor"]
    elif kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        low_wave, high_wave = old / low, old / high
        wave = 2 * math.pi / f
        scaled = torch.where(wave > low_wave, f / factor, f)
        s = (old / wave - low) / (high - low)
        smooth = (1 - s) * scaled / factor + s * scaled
        medium = (wave >= high_wave) & (wave <= low_wave)
        f = torch.where(medium, smooth, scaled)
    else:
        assert kind == "default", kind
    return f


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rms(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def forward(cfg, W, ids):
    """Logits [T, vocab] of one sequence, float64."""
    hs, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or hs // nh
    eps = cfg["rms_norm_eps"]
    T = len(ids)
    x = W["model.embed_tokens.weight"][torch.tensor(ids)]
    pos = torch.arange(T, dtype=torch.float64)
    freqs = torch.outer(pos, inv_freq(cfg, hd))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)

    def lin(name, v):
        y = v @ W[name + ".weight"].T
        if name + ".bias" in W:
            y = y + W[name + ".bias"]
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
        k = k[:, None].expand(nkv, g, T, hd).reshape(nh, T, hd)  # repeat_kv
        v = v[:, None].expand(nkv, g, T, hd).reshape(nh, T, hd)
        s = q @ k.transpose(1, 2) * hd ** -0.5 + mask
        o = torch.softmax(s, dim=-1) @ v
        o = o.transpose(0, 1).reshape(T, nh * hd)
        x = x + lin(p + "self_attn.o_proj", o)
        h = rms(x, W[p + "post_attention_layernorm.weight"], eps)
        gate = lin(p + "mlp.gate_proj", h)
        x = x + lin(p + "mlp.down_proj", torch.nn.functional.silu(gate) * lin(p + "mlp.up_proj", h))
    x = rms(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg.get("tie_word_embeddings") else W["lm_head.weight"]
    return x @ head.T


def shapes(cfg):
    hs, nh = cfg["hidden_size"], cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    hd = cfg.get("head_dim") or hs // nh
    inter, V = cfg["intermediate_size"], cfg["vocab_size"]
    bias = cfg["model_type"] == "qwen2" or cfg.get("attention_bias", False)
    out = [("model.embed_tokens.weight", (V, hs))]
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "input_layernorm.weight", (hs,))]
        for n, o in (("q", nh * hd), ("k", nkv * hd), ("v", nkv * hd)):
            out += [(p + f"self_attn.{n}_proj.weight", (o, hs))]
            if bias:
                out += [(p + f"self_attn.{n}_proj.bias", (o,))]
        out += [(p + "self_attn.o_proj.weight", (hs, nh * hd))]
        out += [(p + "post_attention_layernorm.weight", (hs,)),
                (p + "mlp.gate_proj.weight", (inter, hs)),
                (p + "mlp.up_proj.weight", (inter, hs)),
                (p + "mlp.down_proj.weight", (hs, inter))]
    out += [("model.norm.weight", (hs,))]
    if not cfg.get("tie_word_embeddings"):
        out += [("lm_head.weight", (V, hs))]
    return out


def random_weights(cfg, gen):
    W = {}
    for name, shape in shapes(cfg):
        if name.endswith("norm.weight") or "layernorm" in name:
            t = 1 + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name.endswith(".bias"):
            t = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        else:
            t = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[-1])
        W[name] = t
    return W


def encode(t, dtype):
    """Round t to dtype; return (rounded float64 tensor, raw little-endian bytes)."""
    if dtype == "F32":
        a = t.numpy().astype("<f4")
        return torch.from_numpy(a.astype(np.float64)), a.tobytes()
    if dtype == "F16":
        a = t.numpy().astype("<f2")
        return torch.from_numpy(a.astype(np.float64)), a.tobytes()
    assert dtype == "BF16"
    b = t.to(torch.float32).to(torch.bfloat16)
    raw = b.view(torch.int16).numpy().astype("<i2").tobytes()
    return b.to(torch.float64), raw


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes); header per the spec."""
    header, off, blob = {"__metadata__": {"format": "pt"}}, 0, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blob += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)


def make(name, cfg, dtype, shards, seed, ids):
    d = os.path.join(HERE, name)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.remove(os.path.join(d, f))
    gen = torch.Generator().manual_seed(seed)
    W = random_weights(cfg, gen)
    stored = []
    for n, shape in shapes(cfg):
        W[n], raw = encode(W[n], dtype)
        stored.append((n, dtype, shape, raw))
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), stored)
    else:
        per = math.ceil(len(stored) / shards)
        wmap = {}
        for s in range(shards):
            fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = stored[s * per:(s + 1) * per]
            write_safetensors(os.path.join(d, fn), part)
            for t in part:
                wmap[t[0]] = fn
        total = sum(len(t[3]) for t in stored)
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2)
    logits = forward(cfg, W, ids)
    greedy, seq = [], list(ids)
    for _ in range(8):
        nxt = int(forward(cfg, W, seq)[-1].argmax())
        greedy.append(nxt)
        seq.append(nxt)
    return {"ids": ids, "logits": logits.flatten().tolist(), "greedy": greedy}


def main():
    ref = {}
    ref["llama_bf16"] = make("llama_bf16", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 128, "hidden_size": 64, "intermediate_size": 96,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "head_dim": 24, "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 32},
        "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
        "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "bfloat16",
    }, "BF16", 2, 1, [1, 17, 33, 5, 90, 127, 64, 3, 8, 45, 45, 12, 100, 7])
    ref["smol_f32"] = make("smol_f32", {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": 96, "hidden_size": 48, "intermediate_size": 128,
        "num_hidden_layers": 3, "num_attention_heads": 6, "num_key_value_heads": 2,
        "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 100000.0},
        "tie_word_embeddings": True, "hidden_act": "silu",
        "bos_token_id": 0, "eos_token_id": [0, 1], "torch_dtype": "float32",
    }, "F32", 1, 2, [0, 5, 9, 13, 2, 95, 40, 41, 42, 7])
    ref["qwen_f16"] = make("qwen_f16", {
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
        "vocab_size": 112, "hidden_size": 56, "intermediate_size": 80,
        "num_hidden_layers": 2, "num_attention_heads": 7, "num_key_value_heads": 1,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "rope_scaling": {"type": "linear", "factor": 2.0},
        "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": None,
        "hidden_act": "silu", "bos_token_id": 110, "eos_token_id": 111, "torch_dtype": "float16",
    }, "F16", 1, 3, [110, 3, 50, 51, 52, 9, 77, 1, 0, 108, 20])
    with open(os.path.join(HERE, "reference.json"), "w") as f:
        json.dump(ref, f)


if __name__ == "__main__":
    main()
