// Package distill implements knowledge-distillation losses, led by the
// convex-combination target that Apple's AFM on-device model was trained
// with: a mix of the true next token and the teacher's top-1 prediction,
// with weight 0.9 on the teacher ("Apple Intelligence Foundation Language
// Models", 2024, §3).
//
// Every loss takes logits and returns the mean loss and, optionally, its
// gradient with respect to the logits, so it plugs into any backward pass.
package distill
