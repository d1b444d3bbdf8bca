package hf_test

import (
	"fmt"

	"github.com/posttrain/posttrain/tensor/nn/hf"
)

// A PEFT adapter applied to a base model, switched off and on, and merged
// into the weights for inference.
func ExampleLoadAdapter() {
	m, err := hf.LoadModel("testdata/smol_f32")
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := hf.LoadAdapter(m, "testdata/adapter/rslora_f16"); err != nil {
		fmt.Println(err)
		return
	}
	a := m.LoRA()
	fmt.Printf("%d adapted projections, rank %d, scale %.3f (rsLoRA)\n", len(a.Modules), a.Config.Rank, a.Modules[0].Scale)
	ids := []int32{0, 5, 9, 13}
	on, _ := m.Logits(ids)
	a.Enable(false)
	off, _ := m.Logits(ids)
	a.Enable(true)
	a.Merge()
	merged, _ := m.Logits(ids)
	last := len(ids)*m.Config.Vocab - 1
	fmt.Println("adapter changes the logits:", on.Data()[last] != off.Data()[last])
	d := merged.Data()[last] - on.Data()[last]
	fmt.Println("merged agrees:", d < 1e-4 && d > -1e-4)
	// Output:
	// 12 adapted projections, rank 3, scale 2.887 (rsLoRA)
	// adapter changes the logits: true
	// merged agrees: true
}
