// The NEON generator is a Python script (main.py), not Go; this go.mod,
// like those of the Go generators beside it, makes the directory a module
// of its own, so that the posttrain module's zip, and so its importers,
// never carry it.
module github.com/posttrain/posttrain/tensor/internal/simd/_gen/neon

go 1.26.0
