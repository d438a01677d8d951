//go:build linux

package tpm

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

// Record closes every segment file it opens, also one it creates itself
// (the first of a boot, the next segment): the daemon records for weeks,
// and a descriptor per new segment must not pile up until a GC happens to
// run the finalizers. GC is off during the test so a leak cannot be hidden.
func TestRecordClosesSegments(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	_, tp := openSimT(t)
	r, dir := newRec(t, tp, 16)
	r.segRecords = 7 // a baseline and 6 events a call: every call starts a segment
	for i := range 3 {
		recordSample(t, r, true)
		if open := openUnder(t, dir); len(open) != 0 {
			t.Fatalf("after Record %d: %d files of the log still open: %q", i+1, len(open), open)
		}
	}
	if segs, _ := filepath.Glob(filepath.Join(dir, "*", "*")); len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %q", segs)
	}
}

// openUnder lists the files under dir this process holds open.
func openUnder(t *testing.T, dir string) []string {
	t.Helper()
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fd := range fds {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(l, dir+"/") {
			out = append(out, l)
		}
	}
	return out
}
