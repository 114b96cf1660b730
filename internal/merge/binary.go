package merge

import (
	"bytes"
	"unicode/utf8"
)

// binarySniffLen is how much of a file git inspects for a NUL byte before calling it binary.
const binarySniffLen = 8000

// IsBinary reports whether data should not be merged or diffed line by line: it has a NUL
// byte in its first 8000 bytes (git's test) or is not valid UTF-8 (which git would still
// merge, but whose conflict markers and diffs a user could not read or edit safely).
func IsBinary(data []byte) bool {
	return bytes.IndexByte(data[:min(len(data), binarySniffLen)], 0) >= 0 || !utf8.Valid(data)
}
