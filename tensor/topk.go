package tensor

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor/internal/simd"
)

// TopK returns the indices and values of the k largest elements of x in
// descending order; equal values keep the lower index first, and NaN ranks
// above every number (as in ArgMax). k larger than len(x) is cut to len(x).
// It panics with a *ShapeError if k is negative.
func TopK(x []float32, k int) ([]int, []float32) {
	if k < 0 {
		panic(&ShapeError{Op: "TopK", Msg: fmt.Sprintf("negative k %d", k)})
	}
	k = min(k, len(x))
	idx, val := make([]int, k), make([]float32, k)
	TopKTo(idx, val, x)
	return idx, val
}

// TopKTo is TopK into caller-owned slices, for hot loops: it finds the
// k = min(len(idx), len(x)) largest elements, writes them to idx[:k] and
// val[:k], and returns k. It panics with a *ShapeError if len(val) differs
// from len(idx).
//
// Once the first k elements are in, it asks the SIMD kernel FirstAbove for
// the next element above the current k-th value, so on a vocabulary-sized
// row it touches each element once at vector speed and does scalar work
// only for the few that enter the top k.
func TopKTo(idx []int, val []float32, x []float32) int {
	mustSameLen("TopKTo", len(idx), len(val))
	k := min(len(idx), len(x))
	if k == 0 {
		return 0
	}
	n := 0
	for i := 0; i < len(x); i++ {
		if n == k {
			j := simd.K.FirstAbove(x[i:], val[k-1])
			if i += j; i == len(x) {
				break
			}
			if !ranksAbove(x[i], val[k-1]) {
				continue // only reachable when the threshold is NaN
			}
		}
		// Insert after every kept value that x[i] does not outrank, so ties
		// keep the lower index first.
		p := n
		for p > 0 && ranksAbove(x[i], val[p-1]) {
			p--
		}
		if n < k {
			n++
		}
		copy(idx[p+1:n], idx[p:n-1])
		copy(val[p+1:n], val[p:n-1])
		idx[p], val[p] = i, x[i]
	}
	return k
}

// ranksAbove orders values for TopK: NaN above numbers, otherwise >.
func ranksAbove(a, b float32) bool {
	if b != b {
		return false
	}
	return a > b || a != a
}
