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

func TestCompareBDF(t *testing.T) {
	// Each field outranks the ones after it; equal is 0.
	order := []BDF{{}, {Function: 7}, {Device: 1}, {Device: 0x1f, Function: 7}, {Bus: 1}, {Bus: 0xff, Device: 0x1f, Function: 7}, {Domain: 1}, {Domain: 0xffff}}
	for i := range order {
		for j := range order {
			got := CompareBDF(order[i], order[j])
			if (i < j && got >= 0) || (i > j && got <= 0) || (i == j && got != 0) {
				t.Errorf("CompareBDF(%v, %v) = %d", order[i], order[j], got)
			}
		}
	}
}
