package prefopt

import (
	"fmt"
	"math"
)

// LeaveOneOut returns RLOO advantages (Ahmadian et al. 2024) for rewards
// laid out in contiguous groups of k samples per prompt: each sample's
// reward minus the mean reward of the other k−1 samples of its group,
//
//	Â_i = R_i − (1/(k−1))·Σ_{j≠i} R_j = k/(k−1)·(R_i − mean R).
//
// Each group's advantages sum to zero; a group of equal rewards gets
// advantages of exactly zero. It returns an error if k < 2, if
// len(rewards) is not a multiple of k, if a reward is NaN or ±Inf, or if an
// advantage overflows float64 (rewards of opposite signs near ±1.8e308).
func LeaveOneOut(rewards []float64, k int) ([]float64, error) {
	if k < 2 {
		return nil, fmt.Errorf("prefopt: LeaveOneOut: group size k = %d, need at least 2", k)
	}
	if len(rewards)%k != 0 {
		return nil, fmt.Errorf("prefopt: LeaveOneOut: %d rewards do not split into groups of %d", len(rewards), k)
	}
	if err := checkFinite("LeaveOneOut", "rewards", rewards); err != nil {
		return nil, err
	}
	adv := make([]float64, len(rewards))
	scale := float64(k) / float64(k-1)
	for g := 0; g < len(rewards); g += k {
		grp := rewards[g : g+k]
		if flat(grp) {
			continue // exactly 0, not the last-bit error of the mean
		}
		mean := groupMean(grp)
		for i, r := range grp {
			adv[g+i] = scale * (r - mean)
			if math.IsInf(adv[g+i], 0) {
				return nil, fmt.Errorf("prefopt: LeaveOneOut: rewards[%d] = %v: its advantage over group %d's mean %v overflows float64", g+i, r, g/k, mean)
			}
		}
	}
	return adv, nil
}
