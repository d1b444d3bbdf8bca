// Package nn is a small, readable training stack on top of package
// autograd: the Llama-family decoder (Model), KV-cache decoding of one or
// many sequences with seeded sampling, a byte tokenizer, AdamW with a
// warmup + cosine schedule, safetensors checkpoints, and structured FFN
// pruning. It is the model that posttrain's examples push distillation and
// preference gradients into, not a framework; package hf loads and saves
// it as a Hugging Face checkpoint.
//
// # The model
//
// Model embeds tokens, runs Layers pre-norm decoder blocks and projects
// back to the vocabulary. A block is
//
//	x ← x + Attn(RMSNorm(x))     causal grouped-query attention with RoPE
//	x ← x + MLP(RMSNorm(x))      SwiGLU: Down(SiLU(Gate·x) ∘ Up·x)
//
// (Vaswani et al. 2017; RMSNorm, Zhang & Sennrich 2019; rotary position
// embeddings, Su et al. 2021; SwiGLU, Shazeer 2020; the combination is
// Touvron et al. 2023's LLaMA). Config covers Llama 2/3.x, Qwen2/2.5,
// SmolLM2 and dense Mistral with the semantics of transformers'
// LlamaForCausalLM: KVHeads key/value heads shared by blocks of query
// heads (grouped-query attention, Ainslie et al. 2023), an explicit
// HeadDim, scores scaled by HeadDim^−½, split-half ("rotate half") RoPE
// with base RoPE and linear or llama3 frequency Scaling, optional q/k/v
// (Qwen2) and output biases, and an output head tied to the embedding or
// its own. TinyLM, the byte-level model of the examples, is a small Config
// of the same type (TinyLM is an alias of Model). Linear layers store
// weights [out, in], as PyTorch does, under the names Params lists.
//
// Forward builds the training graph on an autograd.Tape and returns
// logits [batch·T, Vocab]; CrossEntropy on the tape, or a loss from
// distill or prefopt seeded through Tape.Backward, closes the loop.
// Logits is the same forward without a tape. ForwardPacked and
// HiddenPacked run rows that each hold several documents end to end
// (sequence packing): attention is block-diagonal causal, each document
// seeing only itself, and RoPE positions restart at each document, so
// every document's logits are those it gets alone (Krell et al. 2021,
// "Efficient Sequence Packing without Cross-contamination"). Decoder computes the same
// function from cached keys and values (sized by the key/value heads): a
// prompt enters in one batched pass (Prefill), then each step feeds one
// token per sequence, reading each weight once for the whole batch
// (StepBatch). Sequences keep their own positions, so prompts of
// different lengths need no padding, and a sequence's tokens do not
// depend on the others decoded with it. Sampler draws from the logits
// (temperature, top-k, top-p; Holtzman et al. 2020), reproducibly for a
// seed; Generate and GenerateBatch stop at Config.EOS.
//
// # Frozen in bfloat16
//
// A model that is only read — a reference or teacher, a reward scorer, a
// generator for rejection sampling and online RL — decodes at the speed
// its weights stream from memory: every token reads every weight once.
// FreezeBF16 (or hf.LoadModelWith with Dtype "BF16") holds the matrices —
// embedding, projections, head — as bfloat16 (Kalamkar et al. 2019),
// half the bytes; the norms and biases stay float32. A decoding step
// multiplies by them with a multi-row matrix–vector kernel, the activations
// float32 and exact, so one token's logits differ from the float32 model
// of the same rounded weights only in summation order, and a sequence
// decodes bit for bit the same alone or batched; a prompt's rows go
// through tensor.GemmMixed, which rounds the activations to bfloat16
// (2⁻⁹ relative) before each product. A frozen model's base does not
// train, but LoRA adapters on it do (Dettmers et al. 2023, "QLoRA", with
// bfloat16 in place of 4-bit storage): Forward and Hidden record the
// bfloat16 layers with autograd's MatMulTBF16, whose products keep the
// activations and their gradients float32 and exact (unless a tier with
// bfloat16 arithmetic is pinned), so a step is the float32 step on the
// rounded weights: it costs the same arithmetic (the GEMMs widen the
// weights while packing them) and holds the base in half the bytes. Save and
// PruneFFN return ErrFrozen.
//
// # Training
//
// AdamW is Adam with decoupled weight decay (Kingma & Ba 2015; Loshchilov
// & Hutter 2019), with global-norm gradient clipping; CosineSchedule is the
// usual schedule (linear warmup, then a cosine decay; WarmupCosine takes
// the same settings positionally). A non-finite gradient is reported as an error and the
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
// The config travels in the header's metadata with a SHA-256 of the
// config and the weights, so an edit that keeps every shape (a context or
// RoPE base changed by hand) is caught; non-finite weights are errors,
// and metadata is checked against the tensors before anything is
// allocated, so a tiny file claiming a huge model fails cheaply.
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
