// Package prefopt turns model outputs into preference-tuning losses and
// their gradients: sequence log-probs, pairwise objectives (DPO, IPO,
// hinge, SimPO), reward-model losses (Bradley–Terry and AFM's soft-label
// ranking loss), and online-RL objectives (leave-one-out advantages, GRPO,
// PPO-clip, KL estimators).
//
// Every objective returns the loss and its gradient with respect to its
// inputs, so any model's backward pass can consume it.
package prefopt
