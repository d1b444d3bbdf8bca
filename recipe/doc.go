// Package recipe is the trainer layer of posttrain: the glue between a
// decoder (nn.Model — a byte-level TinyLM or any Hugging Face
// Llama-family checkpoint loaded with hf.LoadModel) and the loss
// packages (prefopt, distill, mirrordescent), so that a post-training
// recipe is a few lines:
//
//	m, _ := hf.LoadModel(dir)
//	tok, _ := hf.LoadTokenizer(dir)
//	m.AddLoRA(nn.LoRAConfig{Rank: 16, Alpha: 32, Targets: []string{"q", "k", "v", "o"}}, seed)
//	pairs, _ := (&recipe.Encoder{Tokenizer: tok, MaxPrompt: 512}).ReadPairs(f)
//	dpo := &recipe.Preference{Policy: m, Objective: prefopt.DPO{Beta: 0.1}, Config: cfg}
//	history, err := dpo.Train(ctx, pairs, nil)
//	hf.SaveAdapter(m, out, dir)
//
// # Data
//
// Encoder reads TRL's dataset formats from JSONL — preference records
// (prompt/chosen/rejected, as text or as conversations) and SFT records
// (prompt/completion, or messages) — and turns them into token ids
// through the tokenizer and its chat template, the prompt rendered with
// the generation prompt and each completion as what the whole
// conversation adds after it. Limits are in tokens; what happens past
// them is Refuse (an error naming the record), KeepEnd (TRL's prompt
// truncation) or KeepStart. Every bad record is a *RecordError naming
// its line and field.
//
// Pack lays SFT examples end to end in rows (first-fit in data order,
// whole examples only) where that is exact: the decoder's packed pass
// (nn.Model.HiddenPacked) keeps each example's attention inside it and
// restarts its RoPE positions, and no example's last token predicts the
// next one's first, so a packed batch has the padded batch's loss and
// gradients (Krell et al. 2021) with less padding; SFT.Pack turns it on.
//
// # Sequence log-probs
//
// Scorer runs a padded batch of prompt+completion sequences (Seqs)
// through the decoder body on an autograd tape and takes the log-probs
// from the final hidden states (nn.Model.Hidden) and the output head
// through the fused LM head of prefopt.Fused, which forms the logits a
// chunk of rows at a time and never whole (issue 15; distill.Fused does
// the same for the distillation losses, student and live teacher side by
// side). It returns each completion's summed log-prob, and its Backward
// carries dLoss/dlog-prob back to the hidden states and the head, then
// down the tape into the trainable parameters. Config.Unfused
// (Scorer.Unfused) forms the completion positions' logits whole instead,
// the path for tests and for losses that need the logits themselves. PrecomputeRef stores a reference model's log-probs
// of a data set once, to a checksummed file (TRL's
// precompute_ref_log_probs).
//
// # Trainers
//
// SFT, Preference (any prefopt.Objective: DPO, IPO, SimPO, ORPO…),
// Distill (a live teacher, or a distill/cache of its top-k), Reward (a
// RewardModel: decoder body and score head, Bradley–Terry or AFM's soft
// ranking) and Online (sample, score, then GRPO, RLOO, PPO-clip or
// AFM's MDLOO) share one loop (Config): AdamW, gradient accumulation,
// global-norm clipping, warmup then cosine, periodic evaluation, metrics
// under TRL's names (loss, rewards/chosen, rewards/margins, logps/chosen,
// kl, grad_norm, learning_rate, num_tokens…) to a callback and to
// metrics.jsonl, cancellation through the context, and an atomic,
// checksummed checkpoint from which a killed run resumes to the weights
// an uninterrupted run ends with. Data order and dropout are functions of
// Config.Seed and the step, so a run is reproducible.
//
// # LoRA
//
// A model carrying LoRA adapters (nn.Model.AddLoRA, or hf.LoadAdapter
// for a PEFT adapter) trains only them: the base is frozen, with no
// gradient buffers or optimizer state. Where a reference model is needed
// (DPO and its relatives, the KL of online RL) and none is given, the
// reference is the same model with its adapters switched off, as TRL
// does with a PEFT model — no second copy of the weights.
//
// References: Rafailov et al. 2023 (DPO); Hu et al. 2021 (LoRA); Hinton
// et al. 2015 (distillation); Shao et al. 2024 (GRPO); Ahmadian et al.
// 2024 (RLOO); Apple, "Apple Intelligence Foundation Language Models",
// 2024 (convex-combination distillation, soft-label reward ranking,
// MDLOO).
package recipe
