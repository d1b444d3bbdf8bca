// Package corpus ships the text the examples train on: Isaac Newton's
// Opticks (4th edition, 1730), a public-domain Project Gutenberg text of
// about 567 KB, as prepared by its producers (credited in the file's
// first lines) and as the Go distribution carries it in
// src/testdata/Isaac.Newton-Opticks.txt.
package corpus

import _ "embed"

// Opticks is the whole text, credit lines included.
//
//go:embed opticks.txt
var Opticks string
