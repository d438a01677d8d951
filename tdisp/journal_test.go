package tdisp

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/testutil/schematest"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	clock := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	j, err := OpenJournal(dir, func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if es, err := j.Entries(); err != nil || len(es) != 0 {
		t.Fatal(es, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(j.Record(JournalEntry{BDF: "0000:3b:00.0", Interface: 0x3b00, Owner: "vm-a", State: StateConfigLocked, SessionID: 7}))
	must(j.Record(JournalEntry{BDF: "0000:3c:00.0", Interface: 0x3c00, Owner: "vm-b", State: StateRun}))
	must(j.Record(JournalEntry{BDF: "0000:3b:00.0", Interface: 0x3b00, Owner: "vm-a", State: StateRun, SessionID: 7}))
	if err := j.Record(JournalEntry{BDF: "../etc", State: StateRun}); err == nil {
		t.Fatal("bad BDF recorded")
	}

	// A fresh Journal (a restarted daemon) reads the same entries back.
	j2, _ := OpenJournal(dir, nil)
	defer j2.Close()
	es, err := j2.Entries()
	if err != nil || len(es) != 2 || es[0].BDF != "0000:3b:00.0" || es[0].State != StateRun || es[0].SessionID != 7 ||
		!es[0].Updated.Equal(clock) || es[1].Owner != "vm-b" {
		t.Fatalf("%+v %v", es, err)
	}
	orph, err := j2.Orphans(func(o string) bool { return o == "vm-a" })
	if err != nil || len(orph) != 1 || orph[0].BDF != "0000:3c:00.0" {
		t.Fatalf("orphans %+v %v", orph, err)
	}
	// STOP → CONFIG_UNLOCKED removes the entry.
	must(j2.Record(JournalEntry{BDF: "0000:3c:00.0", State: StateConfigUnlocked}))
	must(j2.Remove("0000:3b:00.0"))
	if es, _ := j2.Entries(); len(es) != 0 {
		t.Fatalf("entries after release: %+v", es)
	}
	if _, err := os.Stat(filepath.Join(dir, journalFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temporary file left behind")
	}

	// Corruption is an error, never an empty journal.
	for _, bad := range []string{"{", `{"version":2,"entries":[]}`, `{"version":1,"entries":[],"x":1}`,
		`{"version":1,"entries":[{"bdf":"0000:3b:00.0","state":"LOCKED"}]}`} {
		must(os.WriteFile(filepath.Join(dir, journalFile), []byte(bad), 0o600))
		if _, err := j2.Entries(); !errors.Is(err, ErrJournalCorrupt) {
			t.Errorf("%s: %v", bad, err)
		}
		if err := j2.Record(JournalEntry{BDF: "0000:3b:00.0", State: StateRun}); err == nil {
			t.Errorf("%s: record over a corrupt journal", bad)
		}
	}
}

// The journal names its schema; one written before that (no "schema")
// still loads, and one naming another schema is refused.
func TestJournalSchema(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	j, err := OpenJournal(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if err := j.Record(JournalEntry{BDF: "0000:3b:00.0", Interface: 0x3b00, Owner: "vm-a", State: StateRun, SessionID: 7}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, journalFile))
	if err != nil || !bytes.Contains(b, []byte(`"schema": "`+JournalSchema+`"`)) {
		t.Fatalf("journal %s %v", b, err)
	}
	schematest.Validate(t, "tdisp-journal", b)
	old := `{"version":1,"entries":[{"bdf":"0000:3b:00.0","interface_id":15104,"owner":"vm-a","state":"RUN","session_id":7,"updated":"2026-11-26T12:00:00Z"}]}`
	if err := os.WriteFile(filepath.Join(dir, journalFile), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	if es, err := j.Entries(); err != nil || len(es) != 1 || es[0].Owner != "vm-a" || es[0].State != StateRun {
		t.Fatalf("old journal: %+v %v", es, err)
	}
	other := strings.Replace(old, `{"version":1`, `{"schema":"vfio-gate/tdisp-journal/v2","version":1`, 1)
	if err := os.WriteFile(filepath.Join(dir, journalFile), []byte(other), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Entries(); !errors.Is(err, ErrJournalCorrupt) {
		t.Fatalf("journal of another schema: %v", err)
	}
}
