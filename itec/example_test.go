package itec_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/posttrain/posttrain/itec"
)

// fixed is a member that always answers the same way for a prompt.
type fixed map[string]string

func (f fixed) Generate(_ context.Context, prompt string, seeds []uint64) ([]string, error) {
	out := make([]string, len(seeds))
	for i := range out {
		out[i] = f[prompt]
	}
	return out, nil
}

// wordCount is a toy reward model: more words, higher score.
type wordCount struct{}

func (wordCount) Score(_ context.Context, _ string, responses []string) ([]float64, error) {
	s := make([]float64, len(responses))
	for i, r := range responses {
		s[i] = float64(len(strings.Fields(r)))
	}
	return s, nil
}

// Committee distillation keeps, per prompt, the best response of any
// member: here each member wins the prompt it is good at.
func ExampleRejectionSample() {
	committee := []itec.Member{
		{Name: "dpo-r1", Algorithm: itec.DPO, Model: fixed{"sum": "4", "poem": "roses are red violets are blue"}},
		{Name: "rs-r1", Algorithm: itec.RejectionSampling, Model: fixed{"sum": "two plus two is four", "poem": "roses"}},
	}
	sel, err := itec.RejectionSample(context.Background(), committee, wordCount{}, []string{"sum", "poem"}, itec.SampleOptions{N: 2, Seed: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, c := range sel.Choices {
		fmt.Printf("%s: %q from %s (%s), score %v, margin %v\n", c.Prompt, c.Response, c.Member, c.Algorithm, c.Score, c.Margin)
	}
	fmt.Println("wins:", sel.Wins)
	// Output:
	// sum: "two plus two is four" from rs-r1 (rejection-sampling), score 5, margin 4
	// poem: "roses are red violets are blue" from dpo-r1 (dpo), score 6, margin 5
	// wins: [1 1]
}
