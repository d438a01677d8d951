package pci

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadID is returned by ParseID for anything not of the form VVVV:DDDD.
var ErrBadID = errors.New("pci: malformed vendor:device ID")

// ParseID parses a vendor:device ID pair as `lspci -n` prints it,
// "1b36:0010": four hex digits (either case) on each side of the colon,
// nothing else.
func ParseID(s string) (vendor, device uint16, err error) {
	v, d, ok := strings.Cut(s, ":")
	vv, okV := hexN(v)
	dd, okD := hexN(d)
	if !ok || len(v) != 4 || len(d) != 4 || !okV || !okD {
		return 0, 0, fmt.Errorf("%w %q (want VVVV:DDDD, hex)", ErrBadID, s)
	}
	return uint16(vv), uint16(dd), nil
}
