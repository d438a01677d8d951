// Package wire reads and builds little-endian byte strings, in the shape of
// golang.org/x/crypto/cryptobyte (which is big-endian only).
//
// Every read returns a bool and none can panic: a decoder chains reads with
// && and finishes with Empty() to reject trailing bytes. It is the one place
// where device-supplied bytes are sliced.
package wire
