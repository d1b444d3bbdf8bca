package recipe_test

import (
	"fmt"

	"github.com/posttrain/posttrain/recipe"
)

// Pack fills rows first-fit in data order: the 3-token example does not
// fit after the 6 (row of 8) and opens a row, the 2-token one goes back
// to the first row. Each example's last token predicts nothing (-100).
func ExamplePack() {
	xs := []recipe.Example{
		{Prompt: []int32{1, 2}, Completion: []int32{3, 4, 5, 6}},
		{Prompt: []int32{7}, Completion: []int32{8, 9}},
		{Prompt: []int32{10}, Completion: []int32{11}},
	}
	s, err := recipe.Pack(xs, 8, 0)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("starts:", s.Starts)
	fmt.Println("tokens:", s.Tokens)
	fmt.Println("labels:", s.Labels)
	// Output:
	// starts: [[0 6] [0]]
	// tokens: [1 2 3 4 5 6 10 11 7 8 9 0 0 0 0 0]
	// labels: [-100 3 4 5 6 -100 11 -100 8 9 -100 -100 -100 -100 -100 -100]
}
