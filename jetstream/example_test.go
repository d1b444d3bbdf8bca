package jetstream_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/posttrain/posttrain/itec"
	"github.com/posttrain/posttrain/jetstream"
)

// shout is a committee member: its response to a prompt for a seed.
type shout struct{}

func (shout) Generate(_ context.Context, prompt string, seeds []uint64) ([]string, error) {
	out := make([]string, len(seeds))
	for i, s := range seeds {
		out[i] = fmt.Sprintf("%s! (%d)", prompt, s%10)
	}
	return out, nil
}

// members is the workers' Loader: a real one reads m.File.
type members struct{}

func (members) Generator(context.Context, jetstream.Model) (itec.Generator, error) {
	return shout{}, nil
}

func (members) Scorer(context.Context, jetstream.Model) (itec.Scorer, error) {
	return nil, fmt.Errorf("no reward model here")
}

// Sampling a committee through the queue: an embedded server with no
// port, the coordinator's executor, and one worker with two slots, all in
// this process. Workers elsewhere would join with posttrain-worker.
func Example() {
	dir, _ := os.MkdirTemp("", "run")
	defer os.RemoveAll(dir)
	nc, closeAll, err := jetstream.Dial("", dir) // embedded, stored in dir
	if err != nil {
		log.Fatal(err)
	}
	defer closeAll()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ex, err := jetstream.Open(ctx, nc, jetstream.Options{Run: "example"})
	if err != nil {
		log.Fatal(err)
	}
	defer ex.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		(&jetstream.Worker{Loader: members{}, Concurrency: 2}).Run(ctx, nc, "example")
	}()
	defer func() { cancel(); <-done }()

	committee := []itec.Member{{Name: "loud", Ref: "loud", Model: shout{}}}
	samples, err := itec.Collect(ctx, committee, []string{"hello", "world"}, itec.SampleOptions{N: 2, Seed: 1, Round: 1, Executor: ex})
	if err != nil {
		log.Fatal(err)
	}
	local, _ := itec.Collect(ctx, committee, []string{"hello", "world"}, itec.SampleOptions{N: 2, Seed: 1, Round: 1})
	for p, s := range samples {
		fmt.Println(s[0].Text, "|", s[1].Text, "| same as in process:", s[0] == local[p][0] && s[1] == local[p][1])
	}
	// Output:
	// hello! (5) | hello! (6) | same as in process: true
	// world! (7) | world! (6) | same as in process: true
}
