// Package hf moves Hugging Face checkpoints in and out of posttrain: a
// transformers model directory — config.json plus model.safetensors, or
// shards named by model.safetensors.index.json — becomes an nn.Model, the
// one Llama-family decoder that training, KV-cache decoding, sampling,
// pruning and checkpoints share, and a trained nn.Model goes back out in
// the same layout.
//
// # Models
//
// LoadModel implements the dense decoders transformers calls
// LlamaForCausalLM (Llama 2, 3.x, SmolLM, SmolLM2), MistralForCausalLM
// and Qwen2ForCausalLM (Qwen2, Qwen2.5), with their semantics exactly:
//
//	h  = x + o_proj(attn(RMSNorm(x)))         grouped-query attention
//	x' = h + down(silu(gate(RMSNorm(h))) ∘ up(RMSNorm(h)))
//
// where attention uses num_key_value_heads shared key/value heads, query
// head i reading key/value head i/(heads/kv_heads) (repeat_kv; Ainslie et
// al. 2023), scores scaled by head_dim^−½, and rotary embeddings in the
// split-half ("rotate_half") layout with rope_theta and an optional
// rope_scaling of type linear (Chen et al. 2023) or llama3 (Llama 3.1's
// smooth interpolation of the low frequencies). Qwen2 adds biases to the
// q, k and v projections; tie_word_embeddings makes the output head the
// embedding matrix. RoPE settings are read from rope_theta/rope_scaling
// and from transformers v5's rope_parameters. Other architectures, rope
// types, activations and biases are refused by name.
//
// # Loading
//
// Weights may be F32, BF16 or F16 (and F64). The files are memory mapped
// and each tensor is converted once into the model's float32 storage; on
// Linux each converted window of the map is released at once, so loading
// a bf16 checkpoint peaks at its float32 size plus a few megabytes of
// resident memory. Everything is validated before a weight is allocated:
// config values, every shard's header (offsets that tile the data
// exactly, so a truncated shard fails), the index against the shards,
// and each tensor's name and shape against the config. Errors name the
// file and the tensor; NaN or Inf weights are an error, never silently
// loaded.
//
// # Saving
//
// SaveModel writes config.json and F32 safetensors under transformers'
// names — one file, or shards of at most ShardSize bytes with an index —
// each atomically, so transformers, vLLM and llama.cpp's converter read
// it unchanged and LoadModel gets the same bits back. Each file records
// the SHA-256 of its data in __metadata__, and LoadModel checks it.
//
// # Checks
//
// testdata/gen_models.py re-implements transformers' forward pass in
// float64 PyTorch and writes tiny random checkpoints in each layout the
// loader accepts (bf16 sharded with llama3 scaling and GQA; f32 tied with
// rope_parameters; f16 Qwen2 with q/k/v bias) and their logits; the Go
// logits agree to 1e-6 relative.
package hf
