package recipe

import (
	"runtime/metrics"
	"testing"
)

var sink []byte

// TestCollector: the trainer's collector runs a collection once the heap
// has handed out more than its limit since the last one, and not before.
func TestCollector(t *testing.T) {
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	c := newCollector(64 << 20)
	n := cycles()
	sink = make([]byte, 1<<20)
	c.check()
	if cycles() != n {
		t.Skip("the runtime collected by itself") // nothing to conclude either way
	}
	c = newCollector(1 << 10)
	n = cycles()
	sink = make([]byte, 1<<20)
	c.check()
	if cycles() == n {
		t.Fatal("1 MiB allocated past a 1 KiB limit and no collection")
	}
	if newCollector(-1) != nil {
		t.Fatal("a negative limit made a collector")
	}
	newCollector(-1).check() // a nil collector does nothing
}
