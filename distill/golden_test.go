package distill

import (
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

// golden.json is written by testdata/gen_golden.py (PyTorch autograd in
// float64); see that script for how each case is built.
type goldenFile struct {
	Convex []struct {
		Name            string
		N, V            int
		Logits          []float32
		Labels, Teacher []int32
		W               float64
		Loss            float64
		Grad            []float64
	}
	Divergence []struct {
		Name, Kind       string
		N, V             int
		Student, Teacher []float32
		Beta, T          float64
		Loss             float64
		Grad             []float64
	}
	Sparse []struct {
		Name        string
		N, V, K     int
		Logits      []float32
		Labels, IDs []int32
		Logprobs    []float32
		Mode        string
		Alpha       float64
		Loss        float64
		Grad        []float64
	}
}

func loadGolden(t *testing.T) *goldenFile {
	t.Helper()
	b, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var g goldenFile
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Convex) == 0 || len(g.Divergence) == 0 || len(g.Sparse) == 0 {
		t.Fatal("golden.json has an empty section")
	}
	return &g
}

// checkClose compares a loss to 1e-6 relative (at least 1e-6 absolute)
// and a gradient to 2e-6 absolute plus 1e-5 relative: float32 softmax
// entries carry a few ulp of error, the reference none.
func checkClose(t *testing.T, loss, wantLoss float64, grad []float32, wantGrad []float64) {
	t.Helper()
	assert.InDelta(t, wantLoss, loss, 1e-6*math.Max(1, math.Abs(wantLoss)), "loss")
	require.Len(t, grad, len(wantGrad), "gradient entries")
	for i, g := range grad {
		w := wantGrad[i]
		if !assert.InDelta(t, w, g, 2e-6+1e-5*math.Abs(w), "grad[%d]", i) {
			return // the first bad entry says enough
		}
	}
}

func TestGoldenConvex(t *testing.T) {
	for _, c := range loadGolden(t).Convex {
		t.Run(c.Name, func(t *testing.T) {
			logits := tensor.FromSlice(c.Logits, c.N, c.V)
			grad := tensor.New(c.N, c.V)
			loss, err := ConvexCombination(grad, logits, c.Labels, c.Teacher, c.W)
			require.NoError(t, err)
			checkClose(t, loss, c.Loss, grad.Data(), c.Grad)

			// The loss alone, without a gradient, is the same number.
			l2, err := ConvexCombination(nil, logits, c.Labels, c.Teacher, c.W)
			require.NoError(t, err)
			assert.Equal(t, loss, l2, "loss without grad")
		})
	}
}

func TestGoldenDivergence(t *testing.T) {
	for _, c := range loadGolden(t).Divergence {
		t.Run(c.Name, func(t *testing.T) {
			s := tensor.FromSlice(c.Student, c.N, c.V)
			te := tensor.FromSlice(c.Teacher, c.N, c.V)
			f := func(g *tensor.Dense) (float64, error) {
				switch c.Kind {
				case "soft":
					return SoftTarget(g, s, te, c.T)
				case "forward":
					return ForwardKL(g, s, te, c.T)
				case "reverse":
					return ReverseKL(g, s, te, c.T)
				}
				return GeneralizedJSD(g, s, te, c.Beta, c.T)
			}
			grad := tensor.New(c.N, c.V)
			loss, err := f(grad)
			require.NoError(t, err)
			checkClose(t, loss, c.Loss, grad.Data(), c.Grad)
			l2, err := f(nil)
			require.NoError(t, err)
			assert.Equal(t, loss, l2, "loss without grad")
		})
	}
}

func TestGoldenSparse(t *testing.T) {
	for _, c := range loadGolden(t).Sparse {
		t.Run(c.Name, func(t *testing.T) {
			logits := tensor.FromSlice(c.Logits, c.N, c.V)
			mode := Drop
			if c.Mode == "bucket" {
				mode = Bucket
			}
			top := TopK{IDs: c.IDs, LogProbs: c.Logprobs, K: c.K}
			grad := tensor.New(c.N, c.V)
			loss, err := SparseKL(grad, logits, c.Labels, top, mode, c.Alpha)
			require.NoError(t, err)
			checkClose(t, loss, c.Loss, grad.Data(), c.Grad)
			l2, err := Sparse{Leftover: mode, Alpha: c.Alpha}.Loss(nil, logits, c.Labels, top)
			require.NoError(t, err)
			assert.InDelta(t, loss, l2, 1e-12*math.Max(1, math.Abs(loss)), "loss without grad, through Sparse")
		})
	}
}

// blocks.json is written by testdata/gen_blocks.py: the divergences on
// rows longer than divBlock, swept block by block, with a partial last
// block, and at a spread of logits where the mixture underflows. The
// logits come from an integer formula both sides evaluate alike.
type blocksFile struct {
	N, V, Stride int
	Cases        []struct {
		Name, Kind string
		Beta, T    float64
		ScaleS     float64 `json:"scale_s"`
		ScaleT     float64 `json:"scale_t"`
		Loss       float64
		Grad       []float64
	}
}

func blockLogits(n, v, mul, off, mod int, scale float64) *tensor.Dense {
	x := tensor.New(n, v)
	d := x.Data()
	for i := range n {
		for k := range v {
			m := (k*mul + i*off + 17) % mod
			d[i*v+k] = float32(-float64(m) * scale / float64(mod))
		}
	}
	return x
}

func TestGoldenDivergenceBlocks(t *testing.T) {
	b, err := os.ReadFile("testdata/blocks.json")
	require.NoError(t, err)
	var f blocksFile
	require.NoError(t, json.Unmarshal(b, &f))
	require.NotEmpty(t, f.Cases)
	require.Greater(t, f.V, 2*divBlock, "rows must span blocks")
	require.NotZero(t, f.V%divBlock, "the last block must be partial")
	for _, c := range f.Cases {
		t.Run(c.Name, func(t *testing.T) {
			s := blockLogits(f.N, f.V, 7919, 4099, 2003, c.ScaleS)
			te := blockLogits(f.N, f.V, 6151, 3571, 1999, c.ScaleT)
			grad := tensor.New(f.N, f.V)
			var loss float64
			switch c.Kind {
			case "soft":
				loss, err = SoftTarget(grad, s, te, c.T)
			case "forward":
				loss, err = ForwardKL(grad, s, te, c.T)
			case "reverse":
				loss, err = ReverseKL(grad, s, te, c.T)
			default:
				loss, err = GeneralizedJSD(grad, s, te, c.Beta, c.T)
			}
			require.NoError(t, err)
			var sub []float32
			for k := 0; k < len(grad.Data()); k += f.Stride {
				sub = append(sub, grad.Data()[k])
			}
			checkClose(t, loss, c.Loss, sub, c.Grad)
		})
	}
}
