package spdm

import (
	"slices"
	"testing"
)

// One table of capability names, spelled as Evidence JSON and the docs
// spell them ("meas-no-sig", not "meas-nosig").
func TestCapabilityNamesSpelling(t *testing.T) {
	for _, c := range []struct {
		flags uint32
		want  []string
	}{
		{0, []string{}},
		{CapCert | CapMeasNoSig, []string{"cert", "meas-no-sig"}},
		{CapMeasSig | 2<<10, []string{"meas-sig", "psk-with-context"}},
		{1 << 10, []string{"psk"}},
		{CapKeyEx | CapChunk, []string{"key-ex", "chunk"}},
	} {
		if got := CapabilityNames(c.flags); !slices.Equal(got, c.want) || got == nil {
			t.Errorf("CapabilityNames(%#x) = %q, want %q", c.flags, got, c.want)
		}
	}
}
