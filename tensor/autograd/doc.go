// Package autograd is a small reverse-mode automatic differentiation tape
// over package tensor, enough to train the decoder language models of
// package nn and to push the gradients of posttrain's fused losses into
// them.
//
// # The idea
//
// Reverse mode (backpropagation; Linnainmaa 1970, Rumelhart, Hinton &
// Williams 1986) records each operation as it runs forward, then visits
// the records in reverse, each turning the gradient of its output into
// gradients of its inputs by the chain rule. One backward pass gives the
// gradient of a scalar with respect to every parameter, at a small
// multiple of the forward cost.
//
// A Tape is that record. Ops are methods on it (MatMul, Add, RMSNorm,
// CausalSoftmax, …) that take and return *Var; a Var holds a value and,
// after Backward, its gradient. Parameters are made with Param and keep
// their gradients across steps until ZeroGrad; everything else lives in
// the tape's arena, which Reset rewinds so that a training loop that
// builds the same graph each step reuses the same buffers.
//
// # Seeding from outside
//
// posttrain's losses (distill, prefopt) return dLoss/dlogits themselves,
// fused with the loss for numerical stability. Tape.Backward(logits, grad)
// takes such a gradient as the seed of the backward pass, so any loss
// computed elsewhere drives training. CrossEntropy is provided for plain
// language-model pretraining, and LogProbs gives per-token log-probabilities
// whose gradient, from a sequence-level objective, seeds the pass the same
// way.
//
// # Checks
//
// Every op is tested against PyTorch float64 values and gradients
// (testdata/gen_golden.py) and against central finite differences with
// GradCheckWith (GradCheck with positional settings), which is exported
// for users' own compositions. Matrix
// products go through tensor.Gemm; work is split over rows, batches and
// heads in blocks fixed by the sizes alone, so results are bit-identical
// for any Tape.Workers.
package autograd
