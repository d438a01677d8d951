package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// TestVersionStamp: a packaged build (-ldflags -X) shows its version and
// commit even when the build info has no VCS settings (-buildvcs=false),
// where it used to print "(devel)".
func TestVersionStamp(t *testing.T) {
	noVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	withVCS := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}}
	for _, c := range []struct {
		v, c string
		bi   *debug.BuildInfo
		ok   bool
		want string
	}{
		{"0.1.0", "fedcba9876543210", noVCS, true, "0.1.0 fedcba987654 go1.26.8"},
		{"", "", noVCS, true, "(devel) go1.26.8"},
		{"", "", withVCS, true, "(devel) 0123456789ab go1.26.8"},
		{"0.2.0", "", withVCS, true, "0.2.0 0123456789ab go1.26.8"},
		{"", "", nil, false, "(unknown)"},
		{"0.3.0", "abc", nil, false, "0.3.0 abc"},
	} {
		if got := Version(c.v, c.c, c.bi, c.ok); got != c.want {
			t.Errorf("Version(%q, %q) = %q, want %q", c.v, c.c, got, c.want)
		}
	}
}

func TestSourceDate(t *testing.T) {
	now := time.Date(2026, 12, 5, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	if d, err := SourceDate("", now); err != nil || !d.Equal(now) || d.Location() != time.UTC {
		t.Errorf("unset: %v %v", d, err)
	}
	if d, err := SourceDate("1700000000", now); err != nil || d != time.Unix(1700000000, 0).UTC() {
		t.Errorf("epoch: %v %v", d, err)
	}
	if _, err := SourceDate("yesterday", now); err == nil || err.Error() != `strconv.ParseInt: parsing "yesterday": invalid syntax` {
		t.Errorf("not a number: %v", err)
	}
}

// TestCurrent: the running test binary's build info, stamps first.
func TestCurrent(t *testing.T) {
	bi, ok := debug.ReadBuildInfo()
	if got, want := Current("", ""), Version("", "", bi, ok); got != want || got == "" {
		t.Errorf("Current = %q, want %q", got, want)
	}
	if got := Current("v9.9.9", "0123456789abcdef"); !strings.HasPrefix(got, "v9.9.9 0123456789ab") {
		t.Errorf("stamped: %q", got)
	}
}
