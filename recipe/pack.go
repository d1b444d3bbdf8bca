package recipe

import (
	"fmt"

	"github.com/posttrain/posttrain/prefopt"
)

// Pack lays examples end to end in rows of at most width tokens —
// sequence packing where it is exact: each example attends only to
// itself and takes RoPE positions from 0 at its start
// (nn.Model.HiddenPacked), and the last token of an example predicts
// nothing (its label is prefopt.Ignore), so each example's log-probs,
// and any loss summed over completion tokens with its gradient, are what
// a padded batch of the same examples gives, up to float32 rounding —
// for fewer padded positions.
//
// Rows are filled first-fit in data order: each example goes to the
// first row with room for it, else to a new row; examples are never
// split, so the packing is a function of the examples and width alone.
// The rows are padded with pad to the longest one. An example longer
// than width is an error naming its record.
//
// The Seqs returned describe rows, not examples: Layout has one entry per
// row (PromptLen 1, Len its filled tokens), Labels mark the scored
// positions, Starts where each row's examples begin; Scorer's
// log-probs are then per row.
func Pack(xs []Example, width int, pad int32) (Seqs, error) {
	if len(xs) == 0 || width < 1 {
		return Seqs{}, fmt.Errorf("recipe: Pack: %d examples in rows of %d tokens", len(xs), width)
	}
	type row struct {
		n   int
		ids []int // examples, in order
	}
	var rs []row
	for i, x := range xs {
		l := len(x.Prompt) + len(x.Completion)
		switch {
		case len(x.Prompt) == 0:
			return Seqs{}, fmt.Errorf("recipe: Pack: %s: empty prompt", recordName(i, x))
		case l > width:
			return Seqs{}, fmt.Errorf("recipe: Pack: %s: %d tokens exceed the packed row of %d", recordName(i, x), l, width)
		}
		r := 0
		for r < len(rs) && rs[r].n+l > width {
			r++
		}
		if r == len(rs) {
			rs = append(rs, row{})
		}
		rs[r].n += l
		rs[r].ids = append(rs[r].ids, i)
	}
	w := 0
	for _, r := range rs {
		w = max(w, r.n)
	}
	s := Seqs{
		Tokens: make([]int32, len(rs)*w),
		Labels: make([]int32, len(rs)*w),
		Layout: prefopt.Layout{Width: w, PromptLen: make([]int, len(rs)), Len: make([]int, len(rs))},
		Starts: make([][]int, len(rs)),
	}
	for b, r := range rs {
		tok, lab := s.Tokens[b*w:(b+1)*w], s.Labels[b*w:(b+1)*w]
		for i := range lab {
			lab[i] = prefopt.Ignore
		}
		at := 0
		for _, i := range r.ids {
			x := xs[i]
			s.Starts[b] = append(s.Starts[b], at)
			p := at + copy(tok[at:], x.Prompt)
			e := p + copy(tok[p:], x.Completion)
			// Position j predicts token j+1 of its own example only.
			for j := p - 1; j < e-1; j++ {
				lab[j] = tok[j+1]
			}
			at = e
		}
		for i := at; i < w; i++ {
			tok[i] = pad
		}
		s.Layout.PromptLen[b], s.Layout.Len[b] = 1, r.n
	}
	return s, nil
}

// recordName names example i for errors: its line when read from a file.
func recordName(i int, x Example) string {
	if x.Line > 0 {
		return fmt.Sprintf("record at line %d", x.Line)
	}
	return fmt.Sprintf("example %d", i)
}
