package tpm

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestRecordDoesNotFollowASymlink: a symlink at the event log's path is
// refused, its target left untouched.
func TestRecordDoesNotFollowASymlink(t *testing.T) {
	_, tp := openSimT(t)
	r, path := newRec(t, tp, DefaultPCR)
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	evs, err := EventsFor(sampleEvidence(), sampleDecision(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Record(context.Background(), evs...); err == nil {
		t.Fatal("recorded through a symlink")
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("symlink target written: %q", b)
	}
}
