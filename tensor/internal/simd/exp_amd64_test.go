//go:build gc && !purego

package simd

import (
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestExpConstOffsets checks that exp_amd64.h's byte offsets name the
// same rows of expConst as the Go constants.
func TestExpConstOffsets(t *testing.T) {
	rows := map[string]int{
		"LOG2E": cLog2e, "LN2_HI": cLn2Hi, "LN2_LO": cLn2Lo, "ONE": cOne,
		"EXP_HI": cExpHi, "EXP_LO": cExpLo, "NEG_INF": cNegInf, "HALF": cHalf,
		"SQRT2": cSqrt2, "FIXUP": cFixup, "SQRT_HF": cSqrtHf, "MANT_MASK": cMantMask,
		"M149": cM149, "M126": cM126, "MIN_NORM": cMinNorm,
		"BIAS": cBias, "MAGIC127": cMagic127, "NEG_MAX": cNegMax, "CLAMP87": cClamp87,
		"CLAMP88": cClamp88, "ZERO": cZero, "MASK_TAB": cMaskTab, "INF": cInf,
	}
	for i := range 6 {
		rows["EXP_P"+strconv.Itoa(i)] = cExpP0 + i
	}
	for i := range 9 {
		rows["LOG_P"+strconv.Itoa(i)] = cLogP0 + i
	}
	h, err := os.ReadFile("exp_amd64.h")
	if err != nil {
		t.Fatal(err)
	}
	defs := regexp.MustCompile(`#define C_(\w+) ·expConst\+(\d+)\(SB\)`).FindAllStringSubmatch(string(h), -1)
	if len(defs) != len(rows) {
		t.Errorf("exp_amd64.h defines %d rows, the test knows %d", len(defs), len(rows))
	}
	for _, d := range defs {
		row, ok := rows[d[1]]
		off, _ := strconv.Atoi(d[2])
		if !ok || off != 64*row {
			t.Errorf("exp_amd64.h: C_%s at byte %d; Go row %d (known %v)", d[1], off, row, ok)
		}
	}
	if numExpRows*64 > len(expConst)*64 {
		t.Errorf("expConst too short")
	}
}
