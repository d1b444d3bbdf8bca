package nn

import "github.com/posttrain/posttrain/tensor"

// RoPETables returns the rotary cosines and sines [n, HeadDim/2] of
// positions 0…n−1, scaled as the config says: what Block.Forward takes,
// for callers that run the blocks one at a time (gradient
// checkpointing).
func (m *Model) RoPETables(n int) (cos, sin *tensor.Dense) { return m.ropeTables(n) }
