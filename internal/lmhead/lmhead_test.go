package lmhead

import "testing"

func TestChunkRows(t *testing.T) {
	for _, v := range []int{1, 7, 32000, 49152, 151936, 1 << 22} {
		for heads := 1; heads <= 2; heads++ {
			r := ChunkRows(v, heads)
			if r < 256 || r > 1024 || r%16 != 0 {
				t.Errorf("ChunkRows(%d, %d) = %d, want a multiple of 16 in [256, 1024]", v, heads, r)
			}
			if v >= 1<<22 && r != 256 {
				t.Errorf("ChunkRows(%d, %d) = %d, want the floor 256", v, heads, r)
			}
		}
	}
	if ChunkRows(49152, 2) > ChunkRows(49152, 1) {
		t.Error("two heads got larger chunks than one")
	}
}
