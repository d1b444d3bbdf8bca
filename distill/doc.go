// Package distill implements knowledge-distillation losses, led by the
// convex-combination target that Apple's AFM on-device model was trained
// with, and (in package distill/cache) the store for precomputed teacher
// predictions that makes such training cheap.
//
// # The AFM convex combination
//
// "Apple Intelligence Foundation Language Models" (Gunter et al., 2024,
// §3.2) trains the on-device model with "a convex combination of the true
// labels and the teacher model's top-1 predictions (with 0.9 weight
// assigned to the teacher labels)". Per token, with true next token y and
// teacher argmax ŷ, the target distribution is
//
//	q = w·onehot(ŷ) + (1−w)·onehot(y),   w = DefaultTeacherWeight = 0.9
//
// and the loss is the cross-entropy against it,
//
//	L = −w·log p_S(ŷ) − (1−w)·log p_S(y),   ∂L/∂z = softmax(z) − q.
//
// The teacher enters only through one token id per position, so its
// predictions can be computed once and stored at 4 bytes a token instead
// of V logits (see package distill/cache). Where ŷ = y the loss is exactly
// the cross-entropy, and w = 0 is plain cross-entropy with no teacher at
// all — the setting AFM reports for continued pre-training, where
// distillation did not help.
//
// # The family
//
// Beside ConvexCombination and CrossEntropy the package has the dense
// distillation losses, all over temperature-scaled logits:
//
//   - SoftTarget, Hinton et al. (2015): T²·KL(p_T ‖ p_S);
//   - ForwardKL and ReverseKL: KL(p_T ‖ p_S), mode-covering, and
//     KL(p_S ‖ p_T), mode-seeking (MiniLLM, Gu et al. 2024);
//   - GeneralizedJSD, GKD (Agarwal et al. 2024), exactly as TRL's
//     generalized_jsd_loss, including its β = 0 and β = 1 endpoints;
//   - GKD.Loss, its on-policy use (MiniLLM's reverse KL at β = 1): the
//     divergence over the completion positions of sequences the student
//     generated itself and the teacher scored, with GKD.OnPolicy choosing,
//     at a rate λ, the steps that train on such sequences;
//
// and SparseKL, which distills from the teacher's stored top-k
// log-probabilities, dropping the leftover mass or keeping it as one extra
// bucket, mixed with the hard-label cross-entropy by a weight α.
//
// # Shape of the API
//
// Every loss takes row-major float32 logits [N, V] and returns the mean
// loss over the counted rows as a float64, and, when grad is not nil,
// writes dLoss/dlogits into grad. None imports an autograd package: plug
// the gradient into any backward pass. A negative label (tensor.Ignore,
// −100 as in PyTorch, or any other) ignores a row; a batch where every row is ignored has loss 0, a zero
// gradient and no error, so an empty step changes nothing.
//
// Bad data — a length mismatch, an id outside [0, V), NaN or ±Inf in the
// logits, a temperature ≤ 0, a weight outside [0, 1] — is an error naming
// the input, row and column; grad is then left untouched, because every
// check runs before the first gradient write.
//
// # Without the logits
//
// Fused computes every loss above from the student's final hidden states
// and output layer (a Head) instead of its logits, and a live teacher's
// divergences from the teacher's Head too: rows are taken a chunk at a
// time, each chunk's logits formed by one GEMM, turned into their gradient
// by the same row code as the unfused losses, and carried back to dL/dh
// and dL/dW by two more GEMMs. The [N, V] logits never exist — at 8,192
// tokens of a 151,936-token vocabulary they alone are 5 GB — and rows with
// a negative label are never computed. This is the CPU counterpart of
// Liger-Kernel's fused linear cross-entropy and chunked losses (Hsu et al.
// 2024, arXiv:2410.10989).
//
// # Speed
//
// The losses are fused. ConvexCombination reads the logits from memory
// twice — one vectorized pass (tensor.Sum) over the batch proves them
// finite, then per row tensor.LogSoftmaxAt's one pass forms the label's
// log-probability and the row's log-sum-exp in float64 — and writes the
// gradient once, e^(z − lse) by tensor.SoftmaxLSE, straight into grad
// (which may even be the logits tensor itself), while the row is in
// cache. SparseKL's rows go through the same two passes, its leftover
// bucket folded into the softmax's scale. The divergences take each row in blocks that stay in L1, with
// three transcendental passes per logit (one exponential per model, the
// mixture's logarithm for GeneralizedJSD), the KLs as dot products with
// the unnormalized softmaxes plus float64 constants. There is no [N, V]
// temporary: what a row needs beyond grad lives in per-worker scratch
// rows. Rows are split into chunks whose layout depends only on the
// shape, handed to a fixed pool of GOMAXPROCS goroutines, and their
// float64 partial sums are added in chunk order, so results are
// bit-identical for any number of workers. Steady-state calls
// do not allocate.
//
// Log-probabilities are formed as (z_k − max z) − log Σ e^(z − max z) in
// float64, or read from a float32 softmax only where that is accurate,
// never from a float32 log-sum-exp, so losses stay accurate for logits of
// magnitude 1e4 and log-probability gaps of 1e3.
package distill
