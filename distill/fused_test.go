package distill

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/posttrain/posttrain/tensor"
)

// fusedSetup is one random problem: a student head, a teacher head with a
// different hidden width, labels with ignored rows, teacher ids and a
// stored top-k teacher.
type fusedSetup struct {
	n, v, d, dt int
	s, t        Head
	labels      []int32
	top1        []int32
	top         TopK
	ctx         context.Context // nil: context.Background()
}

func (fs *fusedSetup) context() context.Context {
	if fs.ctx == nil {
		return context.Background()
	}
	return fs.ctx
}

func newFusedSetup(r *rand.Rand, n, v, d int, scale float64, bias bool) *fusedSetup {
	dt := d + 5
	fs := &fusedSetup{n: n, v: v, d: d, dt: dt,
		s:      Head{H: randDense(r, 1, n, d), W: randDense(r, scale/math.Sqrt(float64(d)), v, d)},
		t:      Head{H: randDense(r, 1, n, dt), W: randDense(r, 2/math.Sqrt(float64(dt)), v, dt)},
		labels: randIDs(r, n, v), top1: randIDs(r, n, v),
		top: sparseTeacher(r, n, v, 3)}
	if bias {
		fs.s.Bias = randDense(r, 0.5, 1, v).Data()
		fs.t.Bias = randDense(r, 0.5, 1, v).Data()
	}
	for i := range n {
		if i%5 == 1 || i == n-1 || i == 2 || i == 3 {
			fs.labels[i] = -100
		}
	}
	return fs
}

// logits returns H·Wᵀ + Bias, formed as the fused path forms it.
func headLogits(h Head) *tensor.Dense {
	z := tensor.New(h.H.Dim(0), h.W.Dim(0))
	tensor.Gemm(false, true, 1, h.H, h.W, 0, z)
	if h.Bias != nil {
		for i := range z.Dim(0) {
			tensor.Add(z.Row(i), z.Row(i), h.Bias)
		}
	}
	return z
}

// fusedCase is one loss, fused and as the unfused function on logits.
type fusedCase struct {
	name    string
	teacher bool // uses the live teacher head
	fused   func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error)
	// unfused runs the loss on student logits z (teacher logits zt) for
	// the rows in idx, writing their gradient into g.
	unfused func(g, z, zt *tensor.Dense, fs *fusedSetup, idx []int) (float64, error)
}

// sub returns rows idx of t.
func sub(t *tensor.Dense, idx []int) *tensor.Dense {
	out := tensor.New(len(idx), t.Dim(1))
	for r, i := range idx {
		copy(out.Row(r), t.Row(i))
	}
	return out
}

func fusedCases() []fusedCase {
	cs := []fusedCase{
		{name: "CrossEntropy",
			fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
				return f.CrossEntropy(fs.context(), g, fs.s, fs.labels)
			},
			unfused: func(g, z, _ *tensor.Dense, fs *fusedSetup, _ []int) (float64, error) {
				return CrossEntropy(g, z, fs.labels)
			}},
		{name: "SparseKL/bucket/0.6",
			fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
				return f.SparseKL(fs.context(), g, fs.s, fs.labels, fs.top, Bucket, 0.6)
			},
			unfused: func(g, z, _ *tensor.Dense, fs *fusedSetup, _ []int) (float64, error) {
				return SparseKL(g, z, fs.labels, fs.top, Bucket, 0.6)
			}},
		{name: "SparseKL/drop/0",
			fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
				return f.SparseKL(fs.context(), g, fs.s, fs.labels, fs.top, Drop, 0)
			},
			unfused: func(g, z, _ *tensor.Dense, fs *fusedSetup, _ []int) (float64, error) {
				return SparseKL(g, z, fs.labels, fs.top, Drop, 0)
			}},
		{name: "SparseKL/drop/1/nil-labels",
			fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
				return f.SparseKL(fs.context(), g, fs.s, nil, fs.top, Drop, 1)
			},
			unfused: func(g, z, _ *tensor.Dense, fs *fusedSetup, _ []int) (float64, error) {
				return SparseKL(g, z, nil, fs.top, Drop, 1)
			}},
	}
	for _, w := range []float64{0, DefaultTeacherWeight, 1} {
		cs = append(cs, fusedCase{name: fmt.Sprintf("Convex/%v", w),
			fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
				return f.ConvexCombination(fs.context(), g, fs.s, fs.labels, fs.top1, w)
			},
			unfused: func(g, z, _ *tensor.Dense, fs *fusedSetup, _ []int) (float64, error) {
				return ConvexCombination(g, z, fs.labels, fs.top1, w)
			}})
	}
	type div struct {
		name  string
		fused func(ctx context.Context, f *Fused, g HeadGrad, s, t Head, labels []int32) (float64, error)
		plain func(g, s, t *tensor.Dense) (float64, error)
	}
	divs := []div{
		{"SoftTarget", func(ctx context.Context, f *Fused, g HeadGrad, s, t Head, l []int32) (float64, error) {
			return f.SoftTarget(ctx, g, s, t, l, 2)
		},
			func(g, s, t *tensor.Dense) (float64, error) { return SoftTarget(g, s, t, 2) }},
		{"ForwardKL", func(ctx context.Context, f *Fused, g HeadGrad, s, t Head, l []int32) (float64, error) {
			return f.ForwardKL(ctx, g, s, t, l, 1.5)
		},
			func(g, s, t *tensor.Dense) (float64, error) { return ForwardKL(g, s, t, 1.5) }},
		{"ReverseKL", func(ctx context.Context, f *Fused, g HeadGrad, s, t Head, l []int32) (float64, error) {
			return f.ReverseKL(ctx, g, s, t, l, 0.8)
		},
			func(g, s, t *tensor.Dense) (float64, error) { return ReverseKL(g, s, t, 0.8) }},
	}
	for _, beta := range []float64{0, 0.3, 1} {
		divs = append(divs, div{fmt.Sprintf("GJSD/%v", beta),
			func(ctx context.Context, f *Fused, g HeadGrad, s, t Head, l []int32) (float64, error) {
				return f.GeneralizedJSD(ctx, g, s, t, l, beta, 1.2)
			},
			func(g, s, t *tensor.Dense) (float64, error) { return GeneralizedJSD(g, s, t, beta, 1.2) }})
	}
	for _, dv := range divs {
		for _, masked := range []bool{false, true} {
			name := dv.name
			if masked {
				name += "/masked"
			}
			cs = append(cs, fusedCase{name: name, teacher: true,
				fused: func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
					var l []int32
					if masked {
						l = fs.labels
					}
					return dv.fused(fs.context(), f, g, fs.s, fs.t, l)
				},
				unfused: func(g, z, zt *tensor.Dense, fs *fusedSetup, idx []int) (float64, error) {
					if !masked {
						return dv.plain(g, z, zt)
					}
					gs := tensor.New(len(idx), fs.v)
					l, err := dv.plain(gs, sub(z, idx), sub(zt, idx))
					g.Zero()
					for r, i := range idx {
						copy(g.Row(i), gs.Row(r))
					}
					return l, err
				}})
		}
	}
	return cs
}

// counted returns the rows a case counts.
func (c fusedCase) counted(fs *fusedSetup) []int {
	var idx []int
	for i, y := range fs.labels {
		masked := strings.HasSuffix(c.name, "/masked") || !c.teacher && !strings.Contains(c.name, "nil-labels")
		if !masked || y >= 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// reference runs the unfused loss on the full logits and back through the
// head: dH = G·W, dW = dW0 + Gᵀ·H, dBias = dBias0 + Σ_rows G.
func (c fusedCase) reference(t *testing.T, fs *fusedSetup, g HeadGrad) float64 {
	t.Helper()
	z := headLogits(fs.s)
	var zt *tensor.Dense
	if c.teacher {
		zt = headLogits(fs.t)
	}
	gz := tensor.New(fs.n, fs.v)
	loss, err := c.unfused(gz, z, zt, fs, c.counted(fs))
	if err != nil {
		t.Fatalf("unfused: %v", err)
	}
	tensor.Gemm(false, false, 1, gz, fs.s.W, 0, g.H)
	tensor.Gemm(true, false, 1, gz, fs.s.H, 1, g.W)
	for i := range fs.n {
		tensor.Axpy(1, gz.Row(i), g.Bias)
	}
	return loss
}

func newGrad(r *rand.Rand, fs *fusedSetup) HeadGrad {
	return HeadGrad{H: randDense(r, 1, fs.n, fs.d), W: randDense(r, 0.01, fs.v, fs.d), Bias: randDense(r, 0.01, 1, fs.v).Data()}
}

func cloneGrad(g HeadGrad) HeadGrad {
	return HeadGrad{H: g.H.Clone(), W: g.W.Clone(), Bias: slices.Clone(g.Bias)}
}

// closeTo reports the worst element of got against want, relative to
// want's largest magnitude.
func closeTo(got, want []float32) (worst float64, at int) {
	var scale float64
	for _, x := range want {
		scale = max(scale, math.Abs(float64(x)))
	}
	for i := range got {
		if e := math.Abs(float64(got[i])-float64(want[i])) / max(scale, 1e-30); e > worst || e != e {
			worst, at = e, i
		}
	}
	return worst, at
}

func checkGradsClose(t *testing.T, got, want HeadGrad, tol float64) {
	t.Helper()
	for _, p := range []struct {
		name      string
		got, want []float32
	}{{"dH", got.H.Data(), want.H.Data()}, {"dW", got.W.Data(), want.W.Data()}, {"dBias", got.Bias, want.Bias}} {
		if e, at := closeTo(p.got, p.want); !(e <= tol) {
			t.Errorf("%s[%d] = %v, unfused %v (relative error %.2g)", p.name, at, p.got[at], p.want[at], e)
		}
	}
}

// TestFusedMatchesUnfused checks every fused loss against its unfused twin
// run on H·Wᵀ + Bias, over shapes that are multiples of neither the chunk
// nor the GEMM tiles, with ignored rows at the ends and in runs.
func TestFusedMatchesUnfused(t *testing.T) {
	shapes := []struct{ n, v, d, chunk int }{
		{37, 53, 19, 8}, {37, 53, 19, 0}, {29, 131, 33, 13}, {5, 7, 3, 1},
	}
	for _, sh := range shapes {
		for _, bias := range []bool{false, true} {
			r := rand.New(rand.NewPCG(uint64(sh.n*sh.v), uint64(sh.chunk)))
			fs := newFusedSetup(r, sh.n, sh.v, sh.d, 3, bias)
			for _, c := range fusedCases() {
				t.Run(fmt.Sprintf("%dx%dx%d/chunk%d/bias%v/%s", sh.n, sh.v, sh.d, sh.chunk, bias, c.name), func(t *testing.T) {
					g0 := newGrad(r, fs)
					want := cloneGrad(g0)
					wl := c.reference(t, fs, want)
					got := cloneGrad(g0)
					f := &Fused{ChunkRows: sh.chunk}
					gl, err := c.fused(f, got, fs)
					if err != nil {
						t.Fatal(err)
					}
					if math.Abs(gl-wl) > 1e-6*max(1, math.Abs(wl)) {
						t.Errorf("loss %v, unfused %v", gl, wl)
					}
					checkGradsClose(t, got, want, 2e-6)
					// Again with the same Fused (warm scratch) and nil
					// gradients: the loss alone.
					l2, err := c.fused(f, HeadGrad{}, fs)
					if err != nil || l2 != gl {
						t.Errorf("without gradients: %v, %v; with: %v", l2, err, gl)
					}
				})
			}
		}
	}
}

// TestFusedHugeLogits runs every loss at |z| ~ 1e4 against the unfused
// path on the same logits.
func TestFusedHugeLogits(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fs := newFusedSetup(r, 23, 41, 11, 1e4, true)
	fs.t.W = randDense(r, 1e4/math.Sqrt(float64(fs.dt)), fs.v, fs.dt)
	if m := tensor.Max(headLogits(fs.s).Data()); m < 5e3 {
		t.Fatalf("logits only reach %v", m)
	}
	for _, c := range fusedCases() {
		t.Run(c.name, func(t *testing.T) {
			g0 := newGrad(r, fs)
			want := cloneGrad(g0)
			wl := c.reference(t, fs, want)
			got := cloneGrad(g0)
			gl, err := c.fused(&Fused{ChunkRows: 7}, got, fs)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(gl-wl) > 1e-6*max(1, math.Abs(wl)) || math.IsNaN(gl) {
				t.Errorf("loss %v, unfused %v", gl, wl)
			}
			checkGradsClose(t, got, want, 2e-6)
		})
	}
}

// TestFusedWorkers checks that results are bit-identical for any
// GOMAXPROCS.
func TestFusedWorkers(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	fs := newFusedSetup(r, 150, 300, 40, 3, true)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for _, c := range fusedCases() {
		var ref HeadGrad
		var refLoss float64
		for k, procs := range []int{1, 2, 5} {
			runtime.GOMAXPROCS(procs)
			g := HeadGrad{H: tensor.New(fs.n, fs.d), W: tensor.New(fs.v, fs.d), Bias: make([]float32, fs.v)}
			l, err := c.fused(&Fused{ChunkRows: 64}, g, fs)
			if err != nil {
				t.Fatal(err)
			}
			if k == 0 {
				ref, refLoss = g, l
				continue
			}
			if l != refLoss || !slices.Equal(g.H.Data(), ref.H.Data()) || !slices.Equal(g.W.Data(), ref.W.Data()) || !slices.Equal(g.Bias, ref.Bias) {
				t.Errorf("%s: GOMAXPROCS %d differs from 1", c.name, procs)
			}
		}
	}
}

// ref64 is a float64 reference, written independently of the package's
// row kernels: the loss of a case on float64 logits.
func ref64(name string, fs *fusedSetup, z, zt [][]float64) float64 {
	logSoftmax := func(x []float64, temp float64) []float64 {
		m := math.Inf(-1)
		for _, v := range x {
			m = max(m, v/temp)
		}
		var s float64
		for _, v := range x {
			s += math.Exp(v/temp - m)
		}
		out := make([]float64, len(x))
		for k, v := range x {
			out[k] = v/temp - m - math.Log(s)
		}
		return out
	}
	kl := func(lp, lq []float64) float64 { // KL(p ‖ q)
		var s float64
		for k := range lp {
			s += math.Exp(lp[k]) * (lp[k] - lq[k])
		}
		return s
	}
	var sum float64
	count := 0
	for i := range z {
		y := fs.labels[i]
		switch {
		case strings.HasPrefix(name, "Convex/"), name == "CrossEntropy":
			if y < 0 {
				continue
			}
			w := 0.0
			fmt.Sscan(strings.TrimPrefix(name, "Convex/"), &w)
			lp := logSoftmax(z[i], 1)
			sum += -w*lp[fs.top1[i]] - (1-w)*lp[y]
		default: // divergences, masked
			var temp, beta float64
			switch {
			case strings.HasPrefix(name, "SoftTarget"):
				temp, beta = 2, 0
			case strings.HasPrefix(name, "ForwardKL"):
				temp, beta = 1.5, 0
			case strings.HasPrefix(name, "ReverseKL"):
				temp, beta = 0.8, 1
			default:
				temp = 1.2
				fmt.Sscan(strings.Split(name, "/")[1], &beta)
			}
			if y < 0 {
				continue
			}
			ls, lt := logSoftmax(z[i], temp), logSoftmax(zt[i], temp)
			switch beta {
			case 0:
				sum += kl(lt, ls)
			case 1:
				sum += kl(ls, lt)
			default:
				lm := make([]float64, len(ls))
				for k := range lm {
					lm[k] = math.Log(beta*math.Exp(lt[k]) + (1-beta)*math.Exp(ls[k]))
				}
				sum += beta*kl(lt, lm) + (1-beta)*kl(ls, lm)
			}
			if strings.HasPrefix(name, "SoftTarget") {
				sum += 3 * kl(lt, ls) // T² = 4 in all
			}
		}
		count++
	}
	return sum / float64(count)
}

// logits64 returns H·Wᵀ + Bias in float64.
func logits64(h, w []float64, b []float32, n, v, d int) [][]float64 {
	z := make([][]float64, n)
	for i := range z {
		z[i] = make([]float64, v)
		for j := range v {
			var s float64
			for k := range d {
				s += h[i*d+k] * w[j*d+k]
			}
			if b != nil {
				s += float64(b[j])
			}
			z[i][j] = s
		}
	}
	return z
}

func to64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestFusedFiniteDifference checks the fused gradients with respect to H,
// W and the bias against central differences of a float64 reference loss
// (independent of the package's kernels), which also checks the loss.
func TestFusedFiniteDifference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	fs := newFusedSetup(r, 11, 17, 6, 3, true)
	fs.labels = []int32{-100, 3, 16, 0, -100, 5, 5, 9, 2, 11, -100}
	zt := logits64(to64(fs.t.H.Data()), to64(fs.t.W.Data()), fs.t.Bias, fs.n, fs.v, fs.dt)
	for _, c := range fusedCases() {
		if strings.HasPrefix(c.name, "Sparse") || c.teacher && !strings.HasSuffix(c.name, "/masked") {
			continue // SparseKL and the unmasked divergences: by equality with the unfused path
		}
		t.Run(c.name, func(t *testing.T) {
			g := HeadGrad{H: tensor.New(fs.n, fs.d), W: tensor.New(fs.v, fs.d), Bias: make([]float32, fs.v)}
			loss, err := c.fused(&Fused{ChunkRows: 4}, g, fs)
			if err != nil {
				t.Fatal(err)
			}
			h, w := to64(fs.s.H.Data()), to64(fs.s.W.Data())
			bias := to64(fs.s.Bias)
			f := func() float64 {
				b32 := make([]float32, len(bias))
				for j := range bias {
					b32[j] = float32(bias[j])
				}
				z := logits64(h, w, nil, fs.n, fs.v, fs.d)
				for i := range z {
					for j := range z[i] {
						z[i][j] += bias[j]
					}
				}
				return ref64(c.name, fs, z, zt)
			}
			if want := f(); math.Abs(loss-want) > 1e-5*max(1, math.Abs(want)) {
				t.Errorf("loss %v, float64 reference %v", loss, want)
			}
			const eps = 1e-6
			fd := func(x []float64, k int) float64 {
				old := x[k]
				x[k] = old + eps
				up := f()
				x[k] = old - eps
				down := f()
				x[k] = old
				return (up - down) / (2 * eps)
			}
			for _, p := range []struct {
				name string
				x    []float64
				g    []float32
			}{{"dH", h, g.H.Data()}, {"dW", w, g.W.Data()}, {"dBias", bias, g.Bias}} {
				for k := range p.x {
					if want := fd(p.x, k); math.Abs(float64(p.g[k])-want) > 2e-5+1e-4*math.Abs(want) {
						t.Errorf("%s[%d] = %v, finite difference %v", p.name, k, p.g[k], want)
					}
				}
			}
		})
	}
}

// TestFusedIgnoredRows checks that ignored rows are never read: NaN in
// their hidden states changes nothing, their dH rows are zero, and a batch
// with every row ignored is loss 0, zero dH and dW unchanged.
func TestFusedIgnoredRows(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	fs := newFusedSetup(r, 20, 30, 8, 3, false)
	clean := cloneGrad(newGrad(r, fs))
	g := cloneGrad(clean)
	l1, err := (&Fused{ChunkRows: 3}).CrossEntropy(context.Background(), g, fs.s, fs.labels)
	if err != nil {
		t.Fatal(err)
	}
	dirty := fs.s.H.Clone()
	for i, y := range fs.labels {
		if y < 0 {
			dirty.Row(i)[0] = float32(math.NaN())
		}
	}
	g2 := cloneGrad(clean)
	l2, err := (&Fused{ChunkRows: 3}).CrossEntropy(context.Background(), g2, Head{H: dirty, W: fs.s.W}, fs.labels)
	if err != nil || l1 != l2 || !slices.Equal(g.H.Data(), g2.H.Data()) || !slices.Equal(g.W.Data(), g2.W.Data()) {
		t.Errorf("NaN in ignored rows changed the result: %v %v %v", l1, l2, err)
	}
	for i, y := range fs.labels {
		if y < 0 && slices.ContainsFunc(g.H.Row(i), func(x float32) bool { return x != 0 }) {
			t.Errorf("dH row %d of an ignored row is not zero", i)
		}
	}
	none := slices.Repeat([]int32{-100}, fs.n)
	g3 := cloneGrad(clean)
	l3, err := (&Fused{}).ConvexCombination(context.Background(), g3, fs.s, none, fs.top1, 0.9)
	if err != nil || l3 != 0 || slices.ContainsFunc(g3.H.Data(), func(x float32) bool { return x != 0 }) ||
		!slices.Equal(g3.W.Data(), clean.W.Data()) || !slices.Equal(g3.Bias, clean.Bias) {
		t.Errorf("all rows ignored: loss %v, err %v, or gradients touched", l3, err)
	}
}

// TestFusedInPlace checks that dH may overwrite the student's H.
func TestFusedInPlace(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	fs := newFusedSetup(r, 40, 30, 8, 3, true)
	want := HeadGrad{H: tensor.New(fs.n, fs.d), W: tensor.New(fs.v, fs.d)}
	wl, err := (&Fused{ChunkRows: 6}).ConvexCombination(context.Background(), want, fs.s, fs.labels, fs.top1, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	s := fs.s
	s.H = fs.s.H.Clone()
	got := HeadGrad{H: s.H, W: tensor.New(fs.v, fs.d)}
	gl, err := (&Fused{ChunkRows: 6}).ConvexCombination(context.Background(), got, s, fs.labels, fs.top1, 0.9)
	if err != nil || gl != wl || !slices.Equal(got.H.Data(), want.H.Data()) || !slices.Equal(got.W.Data(), want.W.Data()) {
		t.Errorf("in place: loss %v (want %v), err %v, or gradients differ", gl, wl, err)
	}
}

// TestFusedErrors checks that each bad input is reported, naming it, and
// leaves every output untouched.
func TestFusedErrors(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	base := newFusedSetup(r, 12, 20, 5, 3, true)
	type tc struct {
		name, want string
		edit       func(fs *fusedSetup, g *HeadGrad)
		call       func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error)
	}
	ce := func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
		return f.CrossEntropy(context.Background(), g, fs.s, fs.labels)
	}
	convex := func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
		return f.ConvexCombination(context.Background(), g, fs.s, fs.labels, fs.top1, 0.9)
	}
	jsd := func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
		return f.GeneralizedJSD(context.Background(), g, fs.s, fs.t, fs.labels, 0.5, 1)
	}
	sparse := func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
		return f.SparseKL(context.Background(), g, fs.s, fs.labels, fs.top, Bucket, 0.5)
	}
	nan := float32(math.NaN())
	cases := []tc{
		{"NaN in H", "student H row 5 column 2 is NaN", func(fs *fusedSetup, _ *HeadGrad) { fs.s.H.Row(5)[2] = nan }, ce},
		{"Inf in W", "student W row 7 column 1 is +Inf", func(fs *fusedSetup, _ *HeadGrad) { fs.s.W.Row(7)[1] = float32(math.Inf(1)) }, convex},
		{"NaN in bias", "student bias[4] is NaN", func(fs *fusedSetup, _ *HeadGrad) { fs.s.Bias[4] = nan }, ce},
		{"NaN in teacher H", "teacher H row 0 column 3 is NaN", func(fs *fusedSetup, _ *HeadGrad) { fs.t.H.Row(0)[3] = nan }, jsd},
		{"label", "labels[6] = 20 outside [0, 20)", func(fs *fusedSetup, _ *HeadGrad) { fs.labels[6] = 20 }, ce},
		{"teacher id", "teacherTop1[7] = -1", func(fs *fusedSetup, _ *HeadGrad) { fs.top1[7] = -1 }, convex},
		{"labels length", "11 labels for 12 rows", func(fs *fusedSetup, _ *HeadGrad) { fs.labels = fs.labels[:11] }, convex},
		{"grad H shape", "grad H has shape [12 4]", func(fs *fusedSetup, g *HeadGrad) { g.H = tensor.New(12, 4) }, ce},
		{"grad W shape", "grad W has shape [5 20]", func(fs *fusedSetup, g *HeadGrad) { g.W = tensor.New(5, 20) }, jsd},
		{"grad W aliases W", "grad W overlaps W", func(fs *fusedSetup, g *HeadGrad) { g.W = fs.s.W }, ce},
		{"grad H overlaps H", "grad H overlaps H", func(fs *fusedSetup, g *HeadGrad) {
			// dH one row behind H would overwrite rows before they are read.
			back := make([]float32, (fs.n+1)*fs.d)
			copy(back, fs.s.H.Data())
			fs.s.H = tensor.FromSlice(back[:fs.n*fs.d], fs.n, fs.d)
			g.H = tensor.FromSlice(back[fs.d:], fs.n, fs.d)
		}, ce},
		{"grad H is teacher H", "grad H overlaps teacher H", func(fs *fusedSetup, g *HeadGrad) {
			fs.t.H = tensor.New(fs.n, fs.d)
			fs.t.W = tensor.New(fs.v, fs.d)
			g.H = fs.t.H
		}, jsd},
		{"W width", "student W has shape [20 6]", func(fs *fusedSetup, _ *HeadGrad) { fs.s.W = tensor.New(20, 6) }, ce},
		{"teacher vocabulary", "teacher has 12 rows and vocabulary 21", func(fs *fusedSetup, _ *HeadGrad) {
			fs.t.W, fs.t.Bias = tensor.New(21, fs.dt), nil
		}, jsd},
		{"sparse K", "teacher K = 21 outside [1, V = 20]", func(fs *fusedSetup, _ *HeadGrad) { fs.top.K = 21 }, sparse},
		{"sparse repeat", "teacher row 8 repeats id", func(fs *fusedSetup, _ *HeadGrad) { fs.top.IDs[8*3+1] = fs.top.IDs[8*3] }, sparse},
		{"temperature", "temperature 0", nil, func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
			return f.SoftTarget(context.Background(), g, fs.s, fs.t, nil, 0)
		}},
		{"beta", "beta 1.5 outside", nil, func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
			return f.GeneralizedJSD(context.Background(), g, fs.s, fs.t, nil, 1.5, 1)
		}},
		{"weight", "teacher weight -0.1", nil, func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
			return f.ConvexCombination(context.Background(), g, fs.s, fs.labels, fs.top1, -0.1)
		}},
		// Finite inputs whose logits overflow float32: found by the
		// forward-only pass, before any gradient is written.
		{"overflow", "student logits of row 9 overflow float32", func(fs *fusedSetup, _ *HeadGrad) {
			for k := range fs.s.H.Row(9) {
				fs.s.H.Row(9)[k] = 3e19
			}
			for k := range fs.s.W.Row(3) {
				fs.s.W.Row(3)[k] = 3e19
			}
		}, ce},
		{"tiny temperature", "overflow float32", nil, func(f *Fused, g HeadGrad, fs *fusedSetup) (float64, error) {
			return f.ForwardKL(context.Background(), g, fs.s, fs.t, nil, 1e-38)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fs := *base
			fs.s.H, fs.s.W, fs.s.Bias = base.s.H.Clone(), base.s.W.Clone(), slices.Clone(base.s.Bias)
			fs.t.H, fs.t.W = base.t.H.Clone(), base.t.W.Clone()
			fs.labels, fs.top1 = slices.Clone(base.labels), slices.Clone(base.top1)
			fs.top.IDs = slices.Clone(base.top.IDs)
			g := newGrad(r, &fs)
			if c.edit != nil {
				c.edit(&fs, &g)
			}
			before := cloneGrad(g)
			_, err := c.call(&Fused{ChunkRows: 4}, g, &fs)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
			if !strings.HasPrefix(err.Error(), "distill: Fused.") {
				t.Errorf("error %q lacks the package and op", err)
			}
			if !slices.Equal(g.H.Data(), before.H.Data()) || (g.W != nil && before.W != nil && g.W != fs.s.W && !slices.Equal(g.W.Data(), before.W.Data())) ||
				!slices.Equal(g.Bias, before.Bias) {
				t.Error("outputs changed on error")
			}
		})
	}
}

// A cancelled context stops every fused loss with its error, wrapped,
// before any output is written — also when the logits could overflow and
// a forward-only pass runs first.
func TestFusedCancel(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for _, scale := range []float64{3, 1e19} {
		fs := newFusedSetup(r, 23, 31, 9, 3, true)
		if scale > 3 {
			for k := range fs.s.W.Row(2) {
				fs.s.W.Row(2)[k] = float32(scale)
			}
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		fs.ctx = ctx
		for _, c := range fusedCases() {
			t.Run(fmt.Sprintf("scale%g/%s", scale, c.name), func(t *testing.T) {
				g := newGrad(r, fs)
				before := cloneGrad(g)
				_, err := c.fused(&Fused{ChunkRows: 4}, g, fs)
				require.ErrorIs(t, err, context.Canceled)
				assert.True(t, strings.HasPrefix(err.Error(), "distill: Fused."), "error %q lacks the package and op", err)
				assert.Equal(t, before.H.Data(), g.H.Data(), "grad H")
				assert.Equal(t, before.W.Data(), g.W.Data(), "grad W")
				assert.Equal(t, before.Bias, g.Bias, "grad bias")
			})
		}
	}
}
