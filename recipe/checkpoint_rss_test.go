package recipe

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"github.com/posttrain/posttrain/tensor"
	"github.com/posttrain/posttrain/tensor/autograd"
	"github.com/posttrain/posttrain/tensor/nn"
)

// vmHWM returns the process's peak resident set (VmHWM) in bytes.
func vmHWM(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip("no /proc/self/status")
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if f := bytes.Fields(line); len(f) == 3 && string(f[0]) == "VmHWM:" {
			kb, _ := strconv.ParseInt(string(f[1]), 10, 64)
			return kb << 10
		}
	}
	t.Skip("no VmHWM")
	return 0
}

// resetHWM returns freed memory to the system and resets VmHWM to the
// current resident set (Linux: "5" into clear_refs).
func resetHWM(t *testing.T) {
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skip("cannot reset VmHWM:", err)
	}
}

// TestCheckpointRSS reports the peak resident set of saving and of
// loading the checkpoint of a full fine-tune of a SmolLM2-135M-shape
// model (134.5M parameters, 1.6 GB with AdamW's moments), beyond the
// state itself. It writes 1.6 GB to a temporary directory, so it runs
// only with CKPT_RSS=1:
//
//	CKPT_RSS=1 go test ./recipe -run CheckpointRSS -v
func TestCheckpointRSS(t *testing.T) {
	if os.Getenv("CKPT_RSS") == "" {
		t.Skip("set CKPT_RSS=1 to measure (writes 1.6 GB)")
	}
	const vocab, d, layers, kv, ffn = 49152, 576, 30, 192, 1536
	shapes := []struct {
		name string
		sh   []int
	}{{"embed", []int{vocab, d}}, {"norm", []int{d}}}
	for l := range layers {
		for _, s := range []struct {
			n  string
			sh []int
		}{{"q", []int{d, d}}, {"k", []int{kv, d}}, {"v", []int{kv, d}}, {"o", []int{d, d}},
			{"gate", []int{ffn, d}}, {"up", []int{ffn, d}}, {"down", []int{d, ffn}}, {"ln1", []int{d}}, {"ln2", []int{d}}} {
			shapes = append(shapes, struct {
				name string
				sh   []int
			}{fmt.Sprintf("layers.%d.%s", l, s.n), s.sh})
		}
	}
	var params []nn.Named
	total := 0
	for _, s := range shapes {
		v := tensor.New(s.sh...)
		for i := range v.Data() {
			v.Data()[i] = float32(i%251) * 1e-3
		}
		total += v.Len()
		params = append(params, nn.Named{Name: s.name, Var: autograd.Param(v)})
	}
	opt := nn.NewAdamW(params, 1e-3)
	_, m, v := opt.Moments()
	for i := range m {
		for j := range m[i] {
			m[i][j], v[i][j] = 1e-4, 1e-8
		}
	}
	path := filepath.Join(t.TempDir(), CheckpointFile)
	resetHWM(t)
	base := vmHWM(t)
	t0 := time.Now()
	if err := saveCheckpoint(path, 1, params, opt); err != nil {
		t.Fatal(err)
	}
	save, saveTime := vmHWM(t)-base, time.Since(t0)
	resetHWM(t)
	base = vmHWM(t)
	t0 = time.Now()
	if _, err := loadCheckpoint(path, params, opt); err != nil {
		t.Fatal(err)
	}
	load, loadTime := vmHWM(t)-base, time.Since(t0)
	st, _ := os.Stat(path)
	t.Logf("%d parameters, state %.0f MB, file %.0f MB, resident set at the start %.0f MB; peak beyond it: save %.0f MB (%.1f s), load %.0f MB (%.1f s)",
		total, float64(12*total)/1e6, float64(st.Size())/1e6, float64(base)/1e6,
		float64(save)/1e6, saveTime.Seconds(), float64(load)/1e6, loadTime.Seconds())
}
