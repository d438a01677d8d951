package pci

import "testing"

func TestNormalize(t *testing.T) {
	a, b, c := BDF{Bus: 1}, BDF{Bus: 2}, BDF{Domain: 1}
	in := []BDF{c, b, a, b, c}
	got := Normalize(in)
	if len(got) != 3 || got[0] != a || got[1] != b || got[2] != c {
		t.Errorf("Normalize = %v", got)
	}
	if in[0] != c || in[1] != b || len(in) != 5 {
		t.Errorf("Normalize changed its argument: %v", in)
	}
	if got := Normalize(nil); len(got) != 0 {
		t.Errorf("Normalize(nil) = %v", got)
	}
}
