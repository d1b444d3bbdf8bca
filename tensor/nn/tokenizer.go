package nn

import "fmt"

// ByteTokenizer maps text to its UTF-8 bytes, one token per byte: a
// vocabulary of 256 with no files to load and nothing out of vocabulary.
type ByteTokenizer struct{}

// Vocab returns 256.
func (ByteTokenizer) Vocab() int { return 256 }

// Encode returns the bytes of s as token ids.
func (ByteTokenizer) Encode(s string) []int32 {
	ids := make([]int32, len(s))
	for i := range len(s) {
		ids[i] = int32(s[i])
	}
	return ids
}

// Decode returns the bytes named by ids as a string (which need not be
// valid UTF-8 if a model split a character). It returns an error naming
// the first id outside [0, 256).
func (ByteTokenizer) Decode(ids []int32) (string, error) {
	b := make([]byte, len(ids))
	for i, id := range ids {
		if id < 0 || id > 255 {
			return "", fmt.Errorf("nn: ByteTokenizer: id %d at position %d is not a byte", id, i)
		}
		b[i] = byte(id)
	}
	return string(b), nil
}
