package recipe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"

	"github.com/posttrain/posttrain/internal/atomicfile"
	"github.com/posttrain/posttrain/tensor/nn"
)

// RefLogProbs are a reference model's summed completion log-probs of a
// list of pairs, by index: TRL's precompute_ref_log_probs, which spends
// one forward pass per pair before training instead of one per step.
type RefLogProbs struct {
	Chosen, Rejected []float64
}

// refMagic opens a reference log-probs file; the format is the magic, a
// SHA-256 of the pairs' tokens, the pair count (uint64), the chosen then
// the rejected log-probs (float64), and a SHA-256 of all that.
const refMagic = "posttrain.reflogps.v1\n"

// fingerprint hashes the pairs' tokens, so that a file made for other
// data (or a reordered list) is refused.
func fingerprint(pairs []Pair) [32]byte {
	h := sha256.New()
	var b [4]byte
	for _, p := range pairs {
		for _, s := range [][]int32{p.Prompt, p.Chosen, p.Rejected} {
			binary.LittleEndian.PutUint32(b[:], uint32(len(s)))
			h.Write(b[:])
			for _, t := range s {
				binary.LittleEndian.PutUint32(b[:], uint32(t))
				h.Write(b[:])
			}
		}
	}
	return [32]byte(h.Sum(nil))
}

// PrecomputeRef returns ref's log-probs of pairs, batch pairs per forward
// pass. A model carrying LoRA adapters is scored with them switched off:
// the base is the reference, with no second copy of the weights.
//
// With path set, a file there made for the same pairs is read back
// (checksum verified) instead; otherwise the log-probs are computed and
// written to path atomically. A file for other pairs, or a corrupt one,
// is an error naming it.
func PrecomputeRef(ctx context.Context, ref *nn.Model, pairs []Pair, batch int, pad int32, path string) (*RefLogProbs, error) {
	if len(pairs) == 0 || batch <= 0 {
		return nil, fmt.Errorf("recipe: PrecomputeRef: %d pairs in batches of %d", len(pairs), batch)
	}
	fp := fingerprint(pairs)
	if path != "" {
		r, err := readRef(path, fp, len(pairs))
		if err == nil {
			return r, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("recipe: PrecomputeRef: %w", err)
		}
	}
	out := &RefLogProbs{Chosen: make([]float64, len(pairs)), Rejected: make([]float64, len(pairs))}
	sc := NewScorer(ref)
	err := withAdapterOff(ref, func() error {
		for i := 0; i < len(pairs); i += batch {
			if err := ctx.Err(); err != nil {
				return err
			}
			j := min(i+batch, len(pairs))
			s, err := pairSeqs(pairs[i:j], pad)
			if err != nil {
				return err
			}
			lp, err := sc.LogProbs(s)
			if err != nil {
				return fmt.Errorf("pairs %d…%d (lines %d…%d): %w", i, j-1, pairs[i].Line, pairs[j-1].Line, err)
			}
			copy(out.Chosen[i:j], lp[:j-i])
			copy(out.Rejected[i:j], lp[j-i:])
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("recipe: PrecomputeRef: %w", err)
	}
	if path != "" {
		if err := writeRef(path, fp, out); err != nil {
			return nil, fmt.Errorf("recipe: PrecomputeRef: %s: %w", path, err)
		}
	}
	return out, nil
}

// withAdapterOff runs fn with m's adapters (if any) switched off.
func withAdapterOff(m *nn.Model, fn func() error) error {
	a := m.LoRA()
	if a == nil || !a.Enabled() {
		return fn()
	}
	if a.Merged() {
		return errors.New("the model's adapters are merged: the base is not available as a reference")
	}
	a.Enable(false)
	defer a.Enable(true)
	return fn()
}

func writeRef(path string, fp [32]byte, r *RefLogProbs) error {
	var b bytes.Buffer
	b.WriteString(refMagic)
	b.Write(fp[:])
	binary.Write(&b, binary.LittleEndian, uint64(len(r.Chosen)))
	binary.Write(&b, binary.LittleEndian, r.Chosen)
	binary.Write(&b, binary.LittleEndian, r.Rejected)
	sum := sha256.Sum256(b.Bytes())
	b.Write(sum[:])
	return atomicfile.Write(path, b.Bytes())
}

func readRef(path string, fp [32]byte, n int) (*RefLogProbs, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	head := len(refMagic) + 32 + 8
	if len(b) < head+32 || string(b[:len(refMagic)]) != refMagic {
		return nil, fmt.Errorf("%s: not a reference log-probs file", path)
	}
	body, sum := b[:len(b)-32], b[len(b)-32:]
	if got := sha256.Sum256(body); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%s: checksum mismatch (file corrupt or edited)", path)
	}
	if !bytes.Equal(b[len(refMagic):len(refMagic)+32], fp[:]) {
		return nil, fmt.Errorf("%s: made for other pairs; delete it to recompute", path)
	}
	cnt := binary.LittleEndian.Uint64(b[len(refMagic)+32:])
	if cnt != uint64(n) || uint64(len(body)-head) != 16*cnt {
		return nil, fmt.Errorf("%s: holds %d pairs, want %d", path, cnt, n)
	}
	r := &RefLogProbs{Chosen: make([]float64, n), Rejected: make([]float64, n)}
	for i := range n {
		r.Chosen[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[head+8*i:]))
		r.Rejected[i] = math.Float64frombits(binary.LittleEndian.Uint64(body[head+8*(n+i):]))
	}
	return r, nil
}
