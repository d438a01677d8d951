package pci

import (
	"errors"
	"testing"
)

func TestParseBDF(t *testing.T) {
	good := map[string]BDF{
		"0000:3b:00.0": {0, 0x3b, 0, 0},
		"0001:FF:1f.7": {1, 0xff, 0x1f, 7},
		"ffff:00:02.3": {0xffff, 0, 2, 3},
	}
	for s, want := range good {
		got, err := ParseBDF(s)
		if err != nil || got != want {
			t.Errorf("ParseBDF(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	bad := []string{"", "3b:00.0", "0000:3b:00.0\n", " 0000:3b:00.0", "0000:3b:20.0", "0000:3b:00.8",
		"0000:3b:00:0", "0000/3b:00.0", "../../../etc", "0000:3g:00.0", "00000:3b:00.0", "0000:3b:0.00"}
	for _, s := range bad {
		if _, err := ParseBDF(s); !errors.Is(err, ErrBadBDF) {
			t.Errorf("ParseBDF(%q) err = %v, want ErrBadBDF", s, err)
		}
	}
}

func TestBDFStringRoundTrip(t *testing.T) {
	b := BDF{Domain: 0xa, Bus: 0x3b, Device: 0x1f, Function: 5}
	if s := b.String(); s != "000a:3b:1f.5" {
		t.Fatalf("String = %q", s)
	}
	if b.DevFn() != 0xfd || b.RequesterID() != 0x3bfd {
		t.Fatalf("DevFn %x RequesterID %x", b.DevFn(), b.RequesterID())
	}
	var c BDF
	if err := c.UnmarshalText([]byte(b.String())); err != nil || c != b {
		t.Fatalf("round trip: %v %v", c, err)
	}
}

func FuzzParseBDF(f *testing.F) {
	f.Add("0000:3b:00.0")
	f.Add("../x")
	f.Fuzz(func(t *testing.T, s string) {
		b, err := ParseBDF(s)
		if err != nil {
			return
		}
		b2, err := ParseBDF(b.String())
		if err != nil || b2 != b {
			t.Fatalf("%q -> %v -> %v %v", s, b, b2, err)
		}
	})
}
