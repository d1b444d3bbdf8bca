module github.com/posttrain/posttrain/tensor/internal/simd/_gen/arith

go 1.26.0
