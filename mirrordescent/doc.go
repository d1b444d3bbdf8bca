// Package mirrordescent implements mirror descent on the probability
// simplex and the policy-optimization algorithms built on it: MDPO (Tomar
// et al. 2020) and AFM's online-RLHF algorithm MDLOO, mirror-descent
// policy optimization with leave-one-out advantages.
//
// # Mirror descent
//
// Gradient descent measures a step in Euclidean distance. On the simplex
// of probability vectors that is the wrong ruler: moving 0.01 of mass from
// an action of probability 0.5 is a small change, moving it from one of
// probability 0.01 removes the action. Mirror descent (Nemirovski and
// Yudin 1983; Beck and Teboulle 2003) measures the step with the Bregman
// divergence D_ψ of a convex mirror map ψ instead:
//
//	x_{t+1} = argmin_{x ∈ Δ} η·⟨g_t, x⟩ + D_ψ(x, x_t).
//
// With ψ = ½‖x‖² (Euclidean) this is projected gradient descent, and the
// projection onto the simplex is a sort and a threshold (ProjectSimplex;
// ProjectSimplexTo reports bad input; Duchi et al. 2008). With
// ψ = Σ x·log x (NegEntropy) D_ψ is the KL divergence (KLDivergence)
// and the step has the closed form x_{t+1} ∝ x_t·exp(−η·g_t),
// the exponentiated gradient or multiplicative-weights update
// (EntropicStep). Its regret against the best fixed point over T rounds
// of linear losses in [0, 1] is at most log n/η + η·T/8 = √(T·log n / 2)
// with η = √(8·log n / T): logarithmic, not linear, in the dimension n,
// which is why it is the algorithm of choice on large simplices — a
// vocabulary is one (EntropicStep32 and friends run on the tensor
// kernels). Two such players on a zero-sum matrix game have average
// strategies that converge to a Nash equilibrium (Freund and Schapire
// 1999).
//
// # MDPO
//
// A policy is a point on a simplex per state, so policy optimization can
// take mirror-descent steps: Tomar, Shani, Efroni and Ghavamzadeh,
// "Mirror Descent Policy Optimization" (ICLR 2022, arXiv:2005.09814)
// solve at each iteration
//
//	π_{k+1} = argmax_π E_{a∼π}[A_k(a)] − (1/t_k)·KL(π ‖ π_k),
//
// whose solution for a tabular softmax policy is π_{k+1} ∝ π_k·exp(t_k·A_k)
// (TabularMDPO, TabularMDPO32). For a parametric policy there is no closed
// form; MDPO takes m gradient steps on the importance-sampled surrogate
// −mean(ρ·Â) + (1/t_k)·KL̂(π_θ‖π_k) on the same batch (Surrogate,
// TokenSurrogate, MDPO). Unlike PPO it neither clips the ratio nor
// penalizes KL(π_k‖π_θ): the proximity term is the mirror map's own
// divergence, new policy against old. Their step size anneals as
// t_k = 1 − (k−1)/K (Linear).
//
// A practical consequence of the missing clip: the proximity term's
// gradient ρ·log ρ/t grows without bound in the log-ratio and its
// curvature there is about 1/t, so gradient descent on it is stable only
// for steps below about 2·t in log-ratio units; larger ones make the m
// inner steps overshoot and the policy collapse (examples/mdloo shows it
// with plain gradient descent). PPO-clip zeroes the gradient instead and tolerates larger
// rates; MDPO trades that for an objective whose exact solution is the
// mirror-descent step.
//
// # MDLOO
//
// AFM (Apple, "Apple Intelligence Foundation Language Models", 2024) does
// online RLHF with MDLOO: sample K responses per prompt from π_k, score
// them with the reward model, subtract the KL penalty
// β·(log π_k − log π_ref) to get shaped rewards, use the leave-one-out
// advantage of each response within its prompt (Ahmadian et al. 2024,
// "Back to Basics: Revisiting REINFORCE Style Optimization for Learning
// from Human Feedback in LLMs"; prefopt.LeaveOneOut), and run the MDPO
// update at sequence level. AFM publishes none of K, β, t_k or m: MDLOO
// exposes them, and DefaultMDLOO's choices are argued at the constants.
//
// Where a policy gradient needs it, every function returns the gradient
// with respect to the new policy's log-probs, so the package plugs into
// any backward pass and never depends on an autograd package.
package mirrordescent
