package simd

import "math"

// AdamWStep holds the constants of one AdamW update, each rounded to
// float32 once by the caller. For gradient g, moments m and v and weight
// w, the update is, every operation rounded to float32 in this order:
//
//	g' = g·Clip
//	m ← B1·m + OneMinusB1·g'
//	v ← B2·v + (OneMinusB2·g')·g'
//	w ← w·Shrink − (Step·m)/(√v·SC2 + Eps)
//
// that is, Adam's m̂/(√v̂ + ε) with the bias corrections folded into Step
// = lr/(1 − β₁ᵗ) and SC2 = 1/√(1 − β₂ᵗ), and decoupled weight decay in
// Shrink = 1 − lr·λ. No multiply-add is fused: the vector tiers round
// exactly as the generic twin, and the twin's explicit conversions keep
// the Go compiler from fusing them on arm64 or GOAMD64=v3, so an update
// gives the same bits on every machine. The square root and the division
// are IEEE-correct in every tier.
type AdamWStep struct {
	Clip       float32 // gradient clipping factor, 1 for none
	B1         float32 // β₁
	OneMinusB1 float32 // 1 − β₁, rounded from B1
	B2         float32 // β₂
	OneMinusB2 float32 // 1 − β₂, rounded from B2
	Shrink     float32 // 1 − lr·weight decay
	Step       float32 // lr / (1 − β₁ᵗ)
	SC2        float32 // 1 / √(1 − β₂ᵗ)
	Eps        float32 // ε
}

func adamWGeneric(w, g, m, v []float32, s *AdamWStep) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		gi := g[i] * s.Clip
		mi := float32(s.B1*m[i]) + float32(s.OneMinusB1*gi)
		vi := float32(s.B2*v[i]) + float32(float32(s.OneMinusB2*gi)*gi)
		m[i], v[i] = mi, vi
		d := float32(float32(math.Sqrt(float64(vi)))*s.SC2) + s.Eps
		w[i] = float32(w[i]*s.Shrink) - float32(s.Step*mi)/d
	}
}
