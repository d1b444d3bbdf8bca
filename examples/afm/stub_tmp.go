package main

import (
	"context"
	"io"

	"github.com/posttrain/posttrain/examples/internal/lab"
	"github.com/posttrain/posttrain/tensor/nn"
)

func rewardStage(ctx context.Context, cfg config, data lab.Data, s *nn.TinyLM, res *results, w io.Writer) (prefTask, error) {
	return prefTask{}, nil
}
func itecStage(ctx context.Context, cfg config, p prefTask, res *results, w io.Writer) (*nn.TinyLM, error) {
	return nil, nil
}
func rlStage(ctx context.Context, cfg config, p prefTask, m *nn.TinyLM, res *results, w io.Writer) error {
	return nil
}
