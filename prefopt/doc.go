// Package prefopt turns model outputs into preference-tuning losses and
// their gradients: sequence log-probs, pairwise objectives (DPO, IPO,
// hinge, SimPO), reward-model losses (Bradley–Terry and AFM's soft-label
// ranking loss), online-RL objectives (leave-one-out advantages, GRPO,
// PPO-clip, KL estimators), and preference data as JSONL.
//
// Every objective returns the loss and its gradient with respect to its
// inputs, so any model's backward pass can consume it: the package never
// sees the model, only logits or log-probs.
//
// # From logits to a loss and back
//
// A language model scores a response y to a prompt x by the sum of its
// token log-probs, log π(y|x) = Σ_t log softmax(z_t)[y_t]. TokenLogProbs
// computes those per token from logits [N, V] without materializing the
// [N, V] log-softmax, and TokenLogProbsBackward writes the gradient
// dL/dz_t = dL/dlogp_t·(onehot(y_t) − softmax(z_t)) row by row, optionally
// over the logits themselves. A Layout describes the usual right-padded
// batch (prompt, completion, padding per row), builds the labels, and
// SequenceLogProbs / SequenceLogProbsBackward sum the completion tokens per
// sequence and spread the gradient back. The chain is
//
//	Layout.Labels → TokenLogProbs → SequenceLogProbs → Objective.Loss
//	→ SequenceLogProbsBackward → TokenLogProbsBackward → model backward
//
// as ExampleTokenLogProbs shows.
//
// # Pairwise objectives
//
// Direct preference optimization (Rafailov et al. 2023, "Direct Preference
// Optimization: Your Language Model is Secretly a Reward Model") observes
// that the KL-regularized RLHF objective max E[r] − β·KL(π‖π_ref) has the
// closed-form optimum π*(y) ∝ π_ref(y)·exp(r(y)/β), so the reward is
// r(y) = β·log(π(y)/π_ref(y)) up to a per-prompt constant. Substituting it
// into the Bradley–Terry likelihood of the human preference y_c ≻ y_r gives
// a classification loss on the policy alone,
//
//	ℓ = −logσ(β·h),   h = (log π(y_c) − log π_ref(y_c)) − (log π(y_r) − log π_ref(y_r)).
//
// The objectives here vary that loss (the repository's docs/ALGORITHMS.md
// has them in one table): DPO with conservative label smoothing (cDPO),
// RobustDPO (Chowdhury et al. 2024), IPO (Azar et al. 2023), whose
// squared loss regresses h to a finite target instead of pushing it to
// infinity, Hinge (SLiC, Zhao et al. 2023; RSO, Liu et al. 2023), and the
// reference-free SimPO (Meng et al. 2024). WithNLL adds the NLL of the
// chosen response to any of them, as Llama 3.1 does with α = 0.2. Their
// Stats are the values TRL logs (rewards/chosen, rewards/margins,
// rewards/accuracies, logps/chosen …), so curves compare directly.
//
// The rest of TRL's DPOConfig.loss_type vocabulary is here too, each with
// its paper and TRL's formula at the type: EXO ("exo_pair"), NCA
// ("nca_pair"), BCOPair ("bco_pair", with its running reward shift),
// SPPOHard, AOT (paired and unpaired), APOZero, APODown, DiscoPOP and SFT;
// Mix sums several with weights, as TRL's list of loss types with
// loss_weights does (MPO is sigmoid + bco_pair + sft). The reference-free
// ORPO (Hong et al. 2024), whose odds ratio is computed through a stable
// log(1 − e^a), and CPO (Xu et al. 2024) with its SimPO variant complete
// the pairwise family. KTO (Ethayarajh et al. 2024) learns from unpaired
// thumbs-up/thumbs-down data, with its KL reference point estimated from
// mismatched prompt–completion pairs (KLCompletions).
//
// Log-sigmoids are computed in the stable form min(z, 0) − log1p(e^−|z|):
// log-prob gaps of hundreds of nats with β = 10 (|βh| ≈ 10⁴) give exact,
// finite losses and gradients.
//
// # Reward models
//
// BradleyTerry is the usual pairwise reward-model loss, with Llama 2's
// optional margin. Apple's AFM ("Apple Intelligence Foundation Language
// Models", 2024, post-training) trains its reward model with a soft-label variant:
// each human preference comes with a level (significantly, better,
// slightly, negligibly better), mapped to a target probability p_ℓ in
// {0.95, 0.85, 0.75, 0.65}, and SoftRanking regresses σ(r_c − r_r) to p_ℓ.
// Grading adds AFM's single-sided grading regularizer: a cross-entropy on
// per-response, per-aspect grades.
//
// # Online RL
//
// For K samples per prompt, LeaveOneOut gives the RLOO advantages of
// Ahmadian et al. 2024 ("Back to Basics"), the baseline AFM's MDLOO uses;
// GRPO the group-normalized advantages of DeepSeekMath (Shao et al. 2024).
// Reinforce, PPOClip (Schulman et al. 2017) and the KL estimators k1, k2,
// k3 (Schulman 2020, "Approximating KL divergence") return gradients with
// respect to the new policy's log-probs; ShapeRewards folds the KL
// penalty into the rewards instead, as AFM and TRL's RLOO do.
//
// GRPOLoss is TRL's GRPO policy loss in each of its loss types: grpo
// (per-sequence token means), bnpo, dr_grpo (Liu et al. 2025, no length
// bias), dapo (Yu et al. 2025: token-level normalization, asymmetric clip
// ε_low/ε_high) and cispo (MiniMax 2025: a clipped, detached ratio on every
// token), with the importance ratio per token or per sequence (GSPO, Zheng
// et al. 2025: the length-normalized sequence ratio). GroupAdvantages
// scales rewards by group, batch or not at all; WeightedRewards combines
// several reward functions, or DecoupledAdvantages normalizes each first
// (GDPO); DynamicSampling drops the groups whose rewards
// are all equal, which carry no gradient.
//
// # Without the logits
//
// Fused takes the policy's final hidden states and output layer instead of
// logits: TokenLogProbs and TokenLogProbsBackward form the logits a chunk
// of rows at a time, so a step's extra memory is a chunk's [c, V] rather
// than [N, V] (5 GB at 8,192 tokens of Qwen2.5's 151,936-token
// vocabulary), and prompt and padding rows are never computed. The
// sequence reductions and objectives in between are the ones above;
// Fused.Pairwise runs a whole DPO-family step.
//
// # Data
//
// Reader and Writer handle preference pairs as JSONL in TRL's field names
// (prompt, chosen, rejected) with an optional AFM level; PromptReader
// reads prompt-only JSONL for online RL, and UnpairedReader KTO's unpaired
// form (prompt, completion, label). A bad line is reported as a
// *LineError naming the line and field, and the reader continues past it,
// so the caller decides whether to skip or stop.
//
// # Conventions
//
// Scalars (log-probs per sequence, losses, rewards) are float64; logits
// and per-token log-probs are float32 tensors. Batch losses are means over
// pairs or entries, and gradients are of those means. Every function that
// takes data returns an error naming the bad input (which field, which
// index, which line) for ragged inputs, NaN or ±Inf, and out-of-range
// hyperparameters, and leaves its outputs untouched (TokenLogProbsBackward
// documents its one exception).
package prefopt
