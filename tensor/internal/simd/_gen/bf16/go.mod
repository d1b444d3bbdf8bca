module github.com/posttrain/posttrain/tensor/internal/simd/_gen/bf16

go 1.26.0
