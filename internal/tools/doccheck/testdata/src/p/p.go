// Package p is doccheck's test input: 6 of 10 identifiers documented by
// default, 5 with -strict, 8 of 15 with -fields.
package p

// A is documented.
type A struct {
	X    int // documented field
	Y, Z int
	w    int
}

type B struct{} // documented by its line comment

type C interface {
	// M is documented.
	M()
	N()
}

// F is documented.
func F() {}

func G() {}

// String is documented.
func (A) String() string { return "" }

func (A) Error() string { return "" }

func (b *b) Exported() {} // on an unexported type: not counted

type b struct{}

// The group comment documents both unless -strict.
const (
	K1 = 1
	K2 = 2 // its own comment
)

var V = 3
