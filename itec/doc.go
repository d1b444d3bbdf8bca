// Package itec implements AFM's iterative teaching committee: rounds in
// which a committee of models samples responses, preferences are collected,
// the reward model is refreshed, and the best response per prompt across
// the whole committee becomes fine-tuning data (committee distillation).
package itec
