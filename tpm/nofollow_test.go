package tpm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordDoesNotFollowASymlink: a symlink planted at a file of the log
// directory (the lock, a segment, the index being replaced) is never
// followed; its target is left untouched. A symlink lock stops recording;
// a symlink segment is not a segment (the records go elsewhere, and verify
// reports the boot's log as incomplete).
func TestRecordDoesNotFollowASymlink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		at     string
		refuse bool // Record fails (else: only the index cache is not written)
	}{
		{"lock", lockName, true},
		{"segment", filepath.Join(bootDirName(1), segmentName(1)), false}, // skipped: recorded in a new boot
		{"index", indexName + ".tmp", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, tp := openSimT(t)
			r, dir := newRec(t, tp, DefaultPCR)
			victim := filepath.Join(t.TempDir(), "victim")
			if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, tc.at)
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(victim, p); err != nil {
				t.Fatal(err)
			}
			_, err := r.Record(context.Background(), sampleEvents(true)...)
			if tc.refuse && err == nil {
				t.Fatal("recorded through a symlink")
			}
			if !tc.refuse && err != nil {
				t.Fatalf("Record: %v", err)
			}
			if b, _ := os.ReadFile(victim); string(b) != "precious" {
				t.Fatalf("symlink target written: %q", b)
			}
		})
	}
}
