// Package mirrordescent implements mirror descent on the probability
// simplex and the policy-optimization algorithms built on it: MDPO (Tomar et
// al. 2020) and AFM's online-RLHF algorithm MDLOO, mirror-descent policy
// optimization with leave-one-out advantages.
package mirrordescent
