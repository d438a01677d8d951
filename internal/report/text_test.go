package report

import "testing"

func TestDashShort(t *testing.T) {
	for _, c := range []struct{ in, dash, short string }{
		{"", "-", "-"},
		{"abc", "abc", "abc"},
		{"abcdefghij", "abcdefghij", "abcd..."},
	} {
		if got := dash(c.in); got != c.dash {
			t.Errorf("dash(%q) = %q, want %q", c.in, got, c.dash)
		}
		if got := short(c.in, 7); got != c.short {
			t.Errorf("short(%q, 7) = %q, want %q", c.in, got, c.short)
		}
	}
}
