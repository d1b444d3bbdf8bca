package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCheck runs on testdata/src, whose p.go has its expected counts in
// its comments; package main and the test file there must not count.
func TestCheck(t *testing.T) {
	for _, c := range []struct {
		name           string
		strict, fields bool
		total          int
		missing        []string
	}{
		// Counted: A, B, C, F, G, A.String, A.Error, K1, K2, V.
		{"default", false, false, 10, []string{"A.Error", "C", "G", "V"}},
		{"strict", true, false, 10, []string{"A.Error", "C", "G", "K1", "V"}},
		// And A.X, A.Y, A.Z, C.M, C.N; A.w is unexported.
		{"fields", false, true, 15, []string{"A.Error", "A.Y", "A.Z", "C", "C.N", "G", "V"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			*strict, *fields = c.strict, c.fields
			defer func() { *strict, *fields = false, false }()
			r, err := Check("testdata/src")
			require.NoError(t, err)
			var names []string
			for _, m := range r.Missing {
				names = append(names, m[strings.LastIndex(m, " ")+1:])
			}
			assert.ElementsMatch(t, c.missing, names)
			assert.Equal(t, c.total, r.Total)
			assert.Equal(t, c.total-len(c.missing), r.Documented)
		})
	}
}

// TestModule holds the module to CONTRIBUTING.md's floor: 98 % of its
// exported identifiers documented, grouped constants each on its own.
func TestModule(t *testing.T) {
	*strict = true
	defer func() { *strict = false }()
	r, err := Check("../../..")
	require.NoError(t, err)
	assert.GreaterOrEqual(t, r.Percent(), 98.0, "undocumented: %v", r.Missing)
}
