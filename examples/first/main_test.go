package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestREADME keeps the README's first program and its printed output true:
// the code block must be this package's main.go, and running it must print
// the block that follows.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	require.NoError(t, err)
	section := string(readme)
	i := strings.Index(section, "## A first program")
	require.GreaterOrEqual(t, i, 0, "README has no first program")
	blocks := regexp.MustCompile("(?s)```(?:go)?\n(.*?)```").FindAllStringSubmatch(section[i:], 2)
	require.Len(t, blocks, 2, "want the program's block and its output's")

	src, err := os.ReadFile("main.go")
	require.NoError(t, err)
	// main.go carries a package comment the README leaves out.
	code := string(src)[strings.Index(string(src), "package main"):]
	assert.Equal(t, blocks[0][1], code, "README's program differs from examples/first/main.go")

	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	main()
	os.Stdout = stdout
	require.NoError(t, w.Close())
	out, err := io.ReadAll(r)
	require.NoError(t, err)
	assert.Equal(t, blocks[1][1], string(out), "README's output differs from the program's")
}
