package pci

import (
	"errors"
	"testing"
)

func TestParseID(t *testing.T) {
	for _, c := range []struct {
		in     string
		vendor uint16
		device uint16
	}{
		{"1b36:0010", 0x1b36, 0x0010},
		{"8086:10D3", 0x8086, 0x10d3},
		{"ffff:0000", 0xffff, 0},
	} {
		v, d, err := ParseID(c.in)
		if err != nil || v != c.vendor || d != c.device {
			t.Errorf("ParseID(%q) = %04x, %04x, %v", c.in, v, d, err)
		}
	}
	for _, in := range []string{"", ":", "1b36", "1b36:", ":0010", "1b36:010", "1b36:00100", "01b36:0010", "1b36-0010",
		"0x1b:0010", "1b36:+010", "1b36:00_0", "1b36:00:1", " 1b36:0010", "1b36:0010\n", "g000:0010"} {
		if _, _, err := ParseID(in); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q): %v, want ErrBadID", in, err)
		}
	}
}
