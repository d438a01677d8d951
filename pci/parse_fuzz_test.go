package pci_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/pci"
)

func TestParseHexAttr(t *testing.T) {
	good := []struct {
		in   string
		bits int
		want uint64
	}{{"0x1af4", 16, 0x1af4}, {"0x020000", 24, 0x020000}, {"0x01", 8, 1}, {"0xFFFF", 16, 0xffff}, {"0x0", 8, 0}}
	for _, c := range good {
		if got, err := pci.ParseHexAttr(c.in, c.bits); err != nil || got != c.want {
			t.Errorf("ParseHexAttr(%q, %d) = %#x %v", c.in, c.bits, got, err)
		}
	}
	for _, in := range []string{"", "0x", "1af4", "0x1af4 ", " 0x1af4", "0x+1af", "0x1_af", "0x10000", "0X1af4", "0x-1", "0xg"} {
		if got, err := pci.ParseHexAttr(in, 16); err == nil {
			t.Errorf("ParseHexAttr(%q) = %#x, want error", in, got)
		}
	}
}

func FuzzParseHexAttr(f *testing.F) {
	for _, s := range []string{"0x1af4", "0x020000", "0x01", "0x", "0x+1", "0x1_0", "0xffffff"} {
		f.Add(s, uint8(16))
	}
	f.Fuzz(func(t *testing.T, s string, b uint8) {
		bits := []int{8, 16, 24, 32}[b%4]
		v, err := pci.ParseHexAttr(s, bits)
		if err != nil {
			if v != 0 {
				t.Fatalf("value %#x with error", v)
			}
			return
		}
		if bits < 64 && v>>bits != 0 {
			t.Fatalf("%q parsed to %#x, wider than %d bits", s, v, bits)
		}
		// Round trip through the kernel's formatting.
		w := fmt.Sprintf("0x%0*x", bits/4, v)
		if v2, err := pci.ParseHexAttr(w, bits); err != nil || v2 != v {
			t.Fatalf("%q -> %#x -> %q -> %#x %v", s, v, w, v2, err)
		}
		if !strings.EqualFold(strings.TrimLeft(s[2:], "0"), strings.TrimLeft(w[2:], "0")) {
			t.Fatalf("%q accepted but does not match %q", s, w)
		}
	})
}

func FuzzParseLockdown(f *testing.F) {
	for _, s := range []string{"[none] integrity confidentiality", "none [integrity] confidentiality", "none integrity [confidentiality]\n", "[]", "[a] [b]", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		mode, err := pci.ParseLockdown(s)
		if (mode == "") != (err != nil) {
			t.Fatalf("mode %q err %v", mode, err)
		}
		if err != nil {
			return
		}
		if strings.ContainsAny(mode, "[] \t\n") {
			t.Fatalf("mode %q has brackets or space", mode)
		}
		if m2, err := pci.ParseLockdown("x [" + mode + "] y"); err != nil || m2 != mode {
			t.Fatalf("round trip %q: %q %v", mode, m2, err)
		}
	})
}

func FuzzParseIOMMUGroup(f *testing.F) {
	for _, s := range []string{"0", "12", "012", "-1", "x", "999999999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := pci.ParseIOMMUGroup(s)
		if err != nil {
			return
		}
		if n < 0 || strconv.Itoa(n) != s {
			t.Fatalf("%q -> %d", s, n)
		}
	})
}
