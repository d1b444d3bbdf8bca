module github.com/posttrain/posttrain/tensor/internal/simd/_gen/gemm

go 1.26.0
