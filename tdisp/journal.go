package tdisp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/pci"
)

// A TDI stays bound to the secure session that locked it: when that session
// ends, the device moves a CONFIG_LOCKED or RUN TDI to ERROR. The long-lived
// owner of the sessions (the daemon) records every lock and start in a
// Journal under its state directory, so that after a restart it can find the
// TDIs it left locked, re-establish a session and STOP those no longer owned.

// JournalEntry is one TDI that is (or may be) locked.
type JournalEntry struct {
	BDF       string      `json:"bdf"`
	Interface InterfaceID `json:"interface_id"`
	Owner     string      `json:"owner"` // e.g. the libvirt domain UUID
	State     State       `json:"state"`
	SessionID uint32      `json:"session_id"`
	Updated   time.Time   `json:"updated"`
}

const (
	journalFile    = "tdisp-journal.json"
	journalVersion = 1
	maxJournal     = 1 << 20
)

// JournalSchema names the shape of the journal file (docs/json.md). A
// journal written before it has no "schema" and still loads.
const JournalSchema = "vfio-gate/tdisp-journal/v1"

type journalDoc struct {
	Schema  string         `json:"schema,omitempty"`
	Version int            `json:"version"`
	Entries []JournalEntry `json:"entries"`
}

// ErrJournalCorrupt is returned when the journal cannot be read back; the
// owner must then treat every TDI as possibly locked (fail closed).
var ErrJournalCorrupt = errors.New("tdisp: journal corrupt")

// Journal is a small persistent record of locked/started TDIs, replaced
// atomically (write to a temporary file, fsync, rename) on every change. It
// is safe for concurrent use within one process.
type Journal struct {
	mu   sync.Mutex
	root *os.Root
	now  func() time.Time
}

// OpenJournal opens (or starts) the journal in dir. now may be nil (time.Now).
func OpenJournal(dir string, now func() time.Time) (*Journal, error) {
	r, err := statedir.Open(dir) // refuses a directory others may write to
	if err != nil {
		return nil, fmt.Errorf("tdisp: journal dir: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Journal{root: r, now: now}, nil
}

// Close releases the directory.
func (j *Journal) Close() error { return j.root.Close() }

func (j *Journal) load() ([]JournalEntry, error) {
	b, err := statedir.ReadFile(j.root, journalFile, maxJournal)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournalCorrupt, err)
	}
	var doc journalDoc
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrJournalCorrupt, err)
	}
	if doc.Version != journalVersion || doc.Schema != "" && doc.Schema != JournalSchema {
		return nil, fmt.Errorf("%w: version %d, schema %q", ErrJournalCorrupt, doc.Version, doc.Schema)
	}
	return doc.Entries, nil
}

func (j *Journal) store(es []JournalEntry) error {
	sort.Slice(es, func(a, b int) bool { return es[a].BDF < es[b].BDF })
	b, err := json.MarshalIndent(journalDoc{Schema: JournalSchema, Version: journalVersion, Entries: es}, "", " ")
	if err != nil {
		return err
	}
	if err := statedir.WriteFile(j.root, journalFile, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("tdisp: journal: %w", err)
	}
	return nil
}

// Record stores e (keyed by BDF), stamped with the current time. An entry
// in CONFIG_UNLOCKED is removed: nothing is left to release.
func (j *Journal) Record(e JournalEntry) error {
	if _, err := parseBDFString(e.BDF); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	es, err := j.load()
	if err != nil {
		return err
	}
	out := es[:0]
	for _, x := range es {
		if x.BDF != e.BDF {
			out = append(out, x)
		}
	}
	if e.State != StateConfigUnlocked {
		e.Updated = j.now().UTC()
		out = append(out, e)
	}
	return j.store(out)
}

// Remove drops the entry of bdf, if any.
func (j *Journal) Remove(bdf string) error {
	return j.Record(JournalEntry{BDF: bdf, State: StateConfigUnlocked})
}

// Entries returns every recorded TDI, sorted by BDF.
func (j *Journal) Entries() ([]JournalEntry, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.load()
}

// Orphans returns the entries whose owner owned() no longer claims: the TDIs
// to re-establish a session with and STOP after a restart.
func (j *Journal) Orphans(owned func(owner string) bool) ([]JournalEntry, error) {
	es, err := j.Entries()
	if err != nil {
		return nil, err
	}
	var out []JournalEntry
	for _, e := range es {
		if !owned(e.Owner) {
			out = append(out, e)
		}
	}
	return out, nil
}

func parseBDFString(s string) (string, error) {
	b, err := pci.ParseBDF(s)
	if err != nil {
		return "", fmt.Errorf("tdisp: journal: %w", err)
	}
	return b.String(), nil
}
