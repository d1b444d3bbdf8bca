package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/tensor/nn"
	"gonum.org/v1/plot"
)

// committeeOut is what stage 4 hands on: the best member and the last
// reward model.
type committeeOut struct {
	best   *nn.TinyLM
	name   string
	reward itec.Scorer
}

// itecStage runs iTeC from the student, then compares the final
// committee's rejection sampling with each member's own best-of-N.
func itecStage(ctx context.Context, cfg config, p prefTask, res *results, w io.Writer) (committeeOut, error) {
	var out committeeOut
	itecPrompts := p.trainPrompts[:min(cfg.ITeCPrompts, len(p.trainPrompts))]
	dir := filepath.Join(cfg.Out, "itec")
	if err := os.RemoveAll(dir); err != nil { // a fresh run, not a resume of an older one
		return out, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return out, err
	}
	pol := policy(cfg, p.student)
	com := lab.NewCommittee(lab.CommitteeConfig{
		Dir: dir, Body: p.student, Len: cfg.RespLen,
		TuneSteps: cfg.TuneSteps, SFTLR: cfg.TuneLR * 3, PrefLR: cfg.TuneLR,
		RLIters: cfg.RLIters, RLPrompts: cfg.RLPrompts, RLLR: cfg.RLLR,
		RewardSteps: cfg.RewardSteps, RewardLR: cfg.RewardLR,
		EvalPrompts: p.testPrompts, EvalSamples: cfg.EvalSamples,
		Seed: cfg.Seed + 20, Bars: cfg.Progress,
	}, p.testPairs)
	base, err := com.Evaluate(ctx, itec.Member{Name: "student", Model: pol})
	if err != nil {
		return out, err
	}
	var ibar lab.Bar
	var last itec.Event
	st, err := itec.Run(ctx, itec.Config{
		Dir: dir, Prompts: itecPrompts, Rounds: cfg.Rounds,
		Initial: []itec.Member{{Name: "student", Algorithm: itec.SFT, Model: pol}},
		Samples: cfg.Samples, Pairs: itec.PairOptions{Strategy: itec.BestWorst},
		KeepBest: 1, Workers: cfg.Workers, Seed: cfg.Seed + 21,
		Labeler: lab.Oracle{}, Rewards: com, Trainer: com, Evaluator: com,
		Progress: func(e itec.Event) {
			if cfg.Progress == nil || e.Step == itec.Training || e.Step == itec.Refreshing {
				return // those show their own bars
			}
			if e.Round != last.Round || e.Step != last.Step || e.Done < last.Done {
				ibar.Finish()
				ibar = lab.NewBar(cfg.Progress, e.Total, fmt.Sprintf("4/5 iTeC round %d: %s", e.Round, e.Step))
				last = itec.Event{Round: e.Round, Step: e.Step}
			}
			ibar.Add(e.Done - last.Done)
			last.Done = e.Done
		},
	})
	ibar.Finish()
	if err != nil {
		return out, fmt.Errorf("iTeC: %w", err)
	}
	load := func(m itec.MemberInfo) (*nn.TinyLM, error) {
		if m.Name == "student" {
			return p.student, nil
		}
		return nn.LoadTinyLM(m.Ref)
	}
	info := map[string]itec.MemberInfo{}
	best := st.Members[0]
	for _, m := range st.Members {
		info[m.Name] = m
		if *m.Eval > *best.Eval {
			best = m
		}
	}
	if out.best, err = load(best); err != nil {
		return out, err
	}
	out.name = best.Name
	if out.reward, err = com.LoadReward(ctx, st.RewardRef); err != nil {
		return out, err
	}

	// The rounds, one row per member.
	t := lab.Table{
		Title: fmt.Sprintf("Stage 4. iTeC: %d rounds on %d prompts; each member's oracle reward on %d held-out prompts × %d samples", len(st.History), len(itecPrompts), len(p.testPrompts), cfg.EvalSamples),
		Head:  []string{"round", "member", "trained by", "oracle reward (light/colour words per response)", "prompts won in its round's committee sampling (of " + fmt.Sprint(len(itecPrompts)) + ")"},
		Rows:  [][]string{{"0", "student", "distillation (stage 2)", fmt.Sprintf("%.3f", base), ""}},
	}
	for i, h := range st.History {
		for _, n := range h.Trained {
			m := info[n]
			won := ""
			if i+1 < len(st.History) {
				won = fmt.Sprint(st.History[i+1].Wins[n])
			}
			t.Rows = append(t.Rows, []string{fmt.Sprint(h.Round), n, string(m.Algorithm), fmt.Sprintf("%.3f", *m.Eval), won})
		}
		if i == 0 {
			t.Rows[0][4] = fmt.Sprint(h.Wins["student"])
		}
	}
	var accs []string
	for i, a := range com.RewardAcc {
		accs = append(accs, fmt.Sprintf("round %d %.1f %%", i+1, 100*a[0]))
	}
	t.Note = fmt.Sprintf("Best member: %s. The reward model refreshed each round on the oracle's labels ranks %s of stage 3's held-out pairs as the oracle does. "+
		"A member's prompts won count the prompts where the reward model picked its response among the committee's; a member trained in the last round was never in a committee.",
		best.Name, strings.Join(accs, ", "))
	if err := res.add(w, t); err != nil {
		return out, err
	}
	pl, err := itecPlot(base, st)
	if err != nil {
		return out, err
	}
	res.plots = append(res.plots, pl)

	// Committee rejection sampling against each member's own best-of-N.
	var members []*nn.TinyLM
	for _, n := range st.Committee {
		m, err := load(info[n])
		if err != nil {
			return out, err
		}
		members = append(members, m)
	}
	t, err = bestOfN(ctx, cfg, p.testPrompts, st.Committee, members, out.reward)
	if err != nil {
		return out, err
	}
	return out, res.add(w, t)
}

// bestOfN compares, on held-out prompts, the committee's rejection
// sampling (the reward model's pick among cfg.BestOf responses from each
// member) with each member's pick among its own cfg.BestOf responses
// and among as many responses as the whole committee draws. The measure
// is the oracle reward of the picked response.
func bestOfN(ctx context.Context, cfg config, prompts, names []string, members []*nn.TinyLM, rm itec.Scorer) (lab.Table, error) {
	n, c := cfg.BestOf, len(members)
	var o lab.Oracle
	// rewards[j][i][s]: oracle reward of member j's sample s on prompt i,
	// scores the reward model's.
	rewards := make([][][]float64, c)
	scores := make([][][]float64, c)
	for j, m := range members {
		rs, err := lab.Sample(ctx, policy(cfg, m), prompts, n*c, cfg.Seed+50)
		if err != nil {
			return lab.Table{}, err
		}
		rewards[j], scores[j] = make([][]float64, len(prompts)), make([][]float64, len(prompts))
		for i, q := range prompts {
			sc, err := rm.Score(ctx, q, rs[i])
			if err != nil {
				return lab.Table{}, err
			}
			scores[j][i] = sc
			for _, r := range rs[i] {
				rewards[j][i] = append(rewards[j][i], o.Reward(r))
			}
		}
	}
	pick := func(sc, rw []float64) float64 { // the oracle reward of the top-scored sample
		return rw[argmax(sc)]
	}
	t := lab.Table{
		Title: fmt.Sprintf("Stage 4. Rejection sampling: oracle reward of the response the last reward model picks, on %d held-out prompts", len(prompts)),
		Head: []string{"sampler", "responses per prompt", "oracle reward of the pick (words per response)", "pick − committee's pick, same prompt (words per response)",
			"oracle reward of a random sample (words per response)"},
	}
	com, comRand := make([]float64, len(prompts)), make([]float64, len(prompts))
	for i := range prompts {
		var sc, rw []float64
		for j := range members {
			sc = append(sc, scores[j][i][:n]...)
			rw = append(rw, rewards[j][i][:n]...)
		}
		com[i], comRand[i] = pick(sc, rw), meanF(rw)
	}
	t.Rows = append(t.Rows, []string{fmt.Sprintf("committee of %d (%s)", c, strings.Join(names, ", ")), fmt.Sprintf("%d × %d = %d", c, n, c*n),
		lab.MeanCI(com).Format("%.2f"), "", lab.MeanCI(comRand).Format("%.2f")})
	for j := range members {
		for _, k := range []int{n, n * c} {
			b, r := make([]float64, len(prompts)), make([]float64, len(prompts))
			for i := range prompts {
				b[i], r[i] = pick(scores[j][i][:k], rewards[j][i][:k]), meanF(rewards[j][i][:k])
			}
			t.Rows = append(t.Rows, []string{names[j] + " alone", fmt.Sprint(k), lab.MeanCI(b).Format("%.2f"), lab.MeanCI(diff(b, com)).Format("%+.2f"), lab.MeanCI(r).Format("%.2f")})
		}
	}
	t.Note = fmt.Sprintf("Each cell: mean ± half-width of the 95%% confidence interval over the %d prompts. The committee is the one iTeC kept after its last round.", len(prompts))
	return t, nil
}

func argmax(v []float64) int {
	b := 0
	for i := range v {
		if v[i] > v[b] {
			b = i
		}
	}
	return b
}

func meanF(v []float64) float64 {
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(max(1, len(v)))
}

// itecPlot draws each algorithm's members' oracle reward by round.
func itecPlot(base float64, st *itec.State) (*plot.Plot, error) {
	by := map[itec.Algorithm]*lab.Series{}
	var order []itec.Algorithm
	for _, m := range st.Members {
		if m.Name == "student" {
			continue
		}
		s, ok := by[m.Algorithm]
		if !ok {
			s = &lab.Series{Name: string(m.Algorithm), X: []float64{0}, Y: []float64{base}}
			by[m.Algorithm] = s
			order = append(order, m.Algorithm)
		}
		s.X = append(s.X, float64(m.Round))
		s.Y = append(s.Y, *m.Eval)
	}
	slices.Sort(order)
	var ss []lab.Series
	for _, a := range order {
		ss = append(ss, *by[a])
	}
	return lab.Plot("4. iTeC members (round 0: the distilled student)", "round", "oracle reward (words per response)", ss...)
}
