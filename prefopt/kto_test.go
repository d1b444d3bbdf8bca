package prefopt

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type ktoGolden struct {
	Name string
	Kind struct {
		LossType string `json:"loss_type"`
		Beta     float64
		DW       float64 `json:"dw"`
		UW       float64 `json:"uw"`
	}
	Policy, Ref     []float64
	Labels          []bool
	PolicyKL        []float64 `json:"policy_kl"`
	RefKL           []float64 `json:"ref_kl"`
	Loss, KL        float64
	Grad            []float64
	RewardsChosen   float64 `json:"rewards_chosen"`
	RewardsRejected float64 `json:"rewards_rejected"`
	LogPChosen      float64 `json:"logp_chosen"`
	LogPRejected    float64 `json:"logp_rejected"`
	Margin          float64
}

func TestGoldenKTO(t *testing.T) {
	g := loadObjGolden(t)
	if len(g.KTO) == 0 {
		t.Fatal("no KTO goldens")
	}
	for _, c := range g.KTO {
		o := KTO{Beta: c.Kind.Beta, DesirableWeight: c.Kind.DW, UndesirableWeight: c.Kind.UW, APOZero: c.Kind.LossType == "apo_zero_unpaired"}
		b := KTOBatch{Policy: c.Policy, Ref: c.Ref, Desirable: c.Labels, PolicyKL: c.PolicyKL, RefKL: c.RefKL}
		name := c.Name + "/" + c.Kind.LossType + " β=" + jsonString(c.Kind.Beta)
		t.Run(name, func(t *testing.T) {
			r, err := o.Loss(b)
			require.NoError(t, err)
			for _, f := range []struct {
				name      string
				got, want float64
			}{
				{"loss", r.Loss, c.Loss}, {"kl", r.KL, c.KL},
				{"rewards/chosen", r.Stats.RewardsChosen, c.RewardsChosen},
				{"rewards/rejected", r.Stats.RewardsRejected, c.RewardsRejected},
				{"rewards/margins", r.Stats.Margin, c.Margin},
				{"logps/chosen", r.Stats.LogPChosen, c.LogPChosen},
				{"logps/rejected", r.Stats.LogPRejected, c.LogPRejected},
			} {
				assert.InDelta(t, f.want, f.got, 1e-12*(1+math.Abs(f.want)), "%s: %s = %v, want %v", name, f.name, f.got, f.want)
			}
			for i := range c.Grad {
				assert.InDelta(t, c.Grad[i], r.Grad[i], 1e-12*(1+math.Abs(c.Grad[i])), "%s: grad[%d] = %v, want %v", name, i, r.Grad[i], c.Grad[i])
			}
		})
	}
}

func TestKTOFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	n := 7
	b := KTOBatch{Policy: make([]float64, n), Ref: make([]float64, n), Desirable: make([]bool, n),
		PolicyKL: make([]float64, n), RefKL: make([]float64, n)}
	for i := range n {
		b.Policy[i] = -20 * rng.Float64()
		b.Ref[i] = b.Policy[i] + 4*rng.Float64() - 2
		b.Desirable[i] = rng.IntN(2) == 0
		b.PolicyKL[i] = -20 * rng.Float64()
		b.RefKL[i] = b.PolicyKL[i] - 2*rng.Float64()
	}
	for _, o := range []KTO{
		{Beta: 0.3, DesirableWeight: 1, UndesirableWeight: 1},
		{Beta: 1, DesirableWeight: 1.2, UndesirableWeight: 0.5},
		{Beta: 0.5, DesirableWeight: 1, UndesirableWeight: 1, APOZero: true},
	} {
		r, err := o.Loss(b)
		if err != nil {
			t.Fatal(err)
		}
		const h = 1e-5
		for i := range b.Policy {
			x0 := b.Policy[i]
			b.Policy[i] = x0 + h
			up, _ := o.Loss(b)
			b.Policy[i] = x0 - h
			dn, _ := o.Loss(b)
			b.Policy[i] = x0
			fd := (up.Loss - dn.Loss) / (2 * h)
			if math.Abs(fd-r.Grad[i]) > 1e-7*(1+math.Abs(fd)) {
				t.Errorf("%+v: grad[%d] = %v, finite difference %v", o, i, r.Grad[i], fd)
			}
		}
	}
}

// At ρ = z₀ every example sits at σ(0) = ½: the loss is the mean weight
// over 2 and each gradient ∓λβ/(4n).
func TestKTOAtReferencePoint(t *testing.T) {
	b := KTOBatch{Policy: []float64{-3, -5}, Ref: []float64{-4, -6}, Desirable: []bool{true, false},
		PolicyKL: []float64{-7, -9}, RefKL: []float64{-8, -10}} // z₀ = 1 = ρ
	r, err := KTO{Beta: 0.4, DesirableWeight: 2, UndesirableWeight: 1}.Loss(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.KL != 1 || math.Abs(r.Loss-0.75) > 1e-15 {
		t.Errorf("kl %v loss %v, want 1, 0.75", r.KL, r.Loss)
	}
	if math.Abs(r.Grad[0]+2*0.4/8) > 1e-15 || math.Abs(r.Grad[1]-0.4/8) > 1e-15 {
		t.Errorf("grad %v, want [−0.1, 0.05]", r.Grad)
	}
}

func TestKLCompletions(t *testing.T) {
	if got := KLCompletions([]string{"a", "b", "c"}); !slices.Equal(got, []string{"c", "a", "b"}) {
		t.Errorf("KLCompletions = %v", got)
	}
	if got := KLCompletions([]int{1}); got != nil {
		t.Errorf("KLCompletions of one = %v, want nil", got)
	}
}

func TestKTOErrors(t *testing.T) {
	good := KTOBatch{Policy: []float64{-1, -2}, Ref: []float64{-1, -2}, Desirable: []bool{true, false},
		PolicyKL: []float64{-1, -2}, RefKL: []float64{-1, -2}}
	noKL := good
	noKL.PolicyKL, noKL.RefKL = nil, nil
	nan := good
	nan.Ref = []float64{-1, math.NaN()}
	ragged := good
	ragged.Desirable = []bool{true}
	w := KTO{Beta: 0.1, DesirableWeight: 1, UndesirableWeight: 1}
	for _, c := range []struct {
		name string
		o    KTO
		b    KTOBatch
		want string
	}{
		{"beta", KTO{DesirableWeight: 1}, good, "Beta"},
		{"weights", KTO{Beta: 0.1}, good, "both 0"},
		{"weight <0", KTO{Beta: 0.1, DesirableWeight: -1, UndesirableWeight: 1}, good, "DesirableWeight"},
		{"empty", w, KTOBatch{}, "empty"},
		{"no kl", w, noKL, "PolicyKL"},
		{"nan", w, nan, "Ref[1]"},
		{"ragged", w, ragged, "Desirable"},
	} {
		_, err := c.o.Loss(c.b)
		checkErr(t, c.name, err, c.want)
	}
	if _, err := (KTO{Beta: 0.1, DesirableWeight: 1, UndesirableWeight: 1, APOZero: true}).Loss(noKL); err != nil {
		t.Errorf("apo_zero_unpaired without KL pairs: %v", err)
	}
}
