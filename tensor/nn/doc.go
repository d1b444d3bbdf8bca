// Package nn is a small, readable training stack on top of package
// autograd: the layers of a LLaMA-style decoder, TinyLM built from them,
// KV-cache decoding with seeded sampling, a byte tokenizer, AdamW with a
// warmup + cosine schedule, safetensors checkpoints, and structured FFN
// pruning. It is the model that posttrain's examples push distillation and
// preference gradients into, not a framework.
//
// # The model
//
// TinyLM embeds tokens, runs Layers pre-norm decoder blocks and projects
// back to the vocabulary. A block is
//
//	x ← x + Attn(RMSNorm(x))     causal multi-head attention with RoPE
//	x ← x + MLP(RMSNorm(x))      SwiGLU: Down(SiLU(Gate·x) ∘ Up·x)
//
// (Vaswani et al. 2017; RMSNorm, Zhang & Sennrich 2019; rotary position
// embeddings, Su et al. 2021; SwiGLU, Shazeer 2020; the combination is
// Touvron et al. 2023's LLaMA). Linear layers have no biases and store
// weights [out, in], as PyTorch does, under the names Params lists.
//
// Forward builds the training graph on an autograd.Tape and returns
// logits [batch·T, Vocab]; CrossEntropy on the tape, or a loss from
// distill or prefopt seeded through Tape.Backward, closes the loop.
// Decoder computes the same function one token at a time from cached keys
// and values, and Sampler draws from its logits (temperature, top-k,
// top-p; Holtzman et al. 2020), reproducibly for a seed.
//
// # Training
//
// AdamW is Adam with decoupled weight decay (Kingma & Ba 2015; Loshchilov
// & Hutter 2019), with global-norm gradient clipping; WarmupCosine is the
// usual schedule. A non-finite gradient is reported as an error and the
// step is skipped. Reusing one Tape across steps (Tape.Reset) keeps a
// training loop from reallocating its activations.
//
// # Checkpoints
//
// Save and LoadTinyLM use the safetensors format (Hugging Face): an
// 8-byte little-endian header length, a JSON header of dtype, shape and
// byte offsets per tensor, then raw little-endian data. Writes are atomic
// (temporary file, sync, rename). Reads validate every field and the
// tiling of the data section, and return errors that name the tensor.
//
// # Pruning
//
// PruneFFN shrinks every block's SwiGLU hidden layer to a target width,
// keeping the units with the largest weight-magnitude score — the
// structured pruning that makes a smaller dense student to distill into,
// as in AFM's on-device model (Gunter et al. 2024).
//
// # Checks
//
// The model, its gradients and two AdamW steps are compared with an
// independent PyTorch implementation (testdata/gen_golden.py), which also
// writes a safetensors file by hand that the reader must parse.
package nn
