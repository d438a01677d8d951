package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/internal/statedir"
	"github.com/vfio-gate/vfio-gate/pci"
)

// StateFileName is the daemon's state file under BackendOptions.StateDir.
const StateFileName = "daemon-state.json"

// stateVersion is the version of the state file format.
const stateVersion = 1

// maxReleased caps the release records the state keeps.
const maxReleased = 32

// StateSchema names the shape of the daemon's state file (docs/json.md).
// Files written before it have no "schema" and numeric IDs; they still load.
const StateSchema = "vfio-gate/daemon-state/v1"

// state is what the state file holds: which domain holds (or reserves)
// which functions, and the last releases.
type state struct {
	Schema   string                  `json:"schema"`
	Version  int                     `json:"version"`
	Domains  map[string]*domainState `json:"domains"`
	Released []ReleaseRecord         `json:"released"`
}

type domainState struct {
	Confidential bool                      `json:"confidential"`
	Devices      map[string]*heldDevice    `json:"devices"` // by BDF string; allowed functions only
	Checked      time.Time                 `json:"checked"`
	Started      time.Time                 `json:"started,omitzero"`
	Denied       map[string]DeviceDecision `json:"denied,omitempty"`
	// Deferred are managed='yes' functions found on a host driver at
	// prepare: reserved for this domain, checked at start begin.
	Deferred map[string]*deferredDevice `json:"deferred,omitempty"`
}

type deferredDevice struct {
	BDF    pci.BDF   `json:"bdf"`
	Driver string    `json:"driver"` // the host driver at prepare
	Since  time.Time `json:"since"`
}

type heldDevice struct {
	BDF            pci.BDF      `json:"bdf"`
	Rule           string       `json:"rule,omitempty"`
	VendorID       jsonhex.U16  `json:"vendor_id"`
	DeviceID       jsonhex.U16  `json:"device_id"`
	DSN            *jsonhex.U64 `json:"dsn,omitempty"`
	Bound          bool         `json:"bound"`
	OriginalDriver string       `json:"original_driver,omitempty"`
	EvidenceDigest string       `json:"evidence_digest,omitempty"`
	Since          time.Time    `json:"since"`
}

func (b *GateBackend) statePath() string { return filepath.Join(b.o.StateDir, StateFileName) }

// load reads the state file from StateDir (none there: an empty state). A
// state file that cannot be read, or does not validate, is an error: the
// daemon must not forget what it holds.
func (b *GateBackend) load() error {
	if b.o.StateDir == "" {
		return nil
	}
	root, err := statedir.Open(b.o.StateDir)
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	defer root.Close()
	data, err := statedir.ReadFile(root, StateFileName, maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("daemon: state file %s is corrupt (move it away only after checking what is bound): %w", b.statePath(), err)
	}
	if st.Version != stateVersion {
		return fmt.Errorf("daemon: state file %s has version %d, want %d", b.statePath(), st.Version, stateVersion)
	}
	if st.Schema != "" && st.Schema != StateSchema { // "": written before the schema name
		return fmt.Errorf("daemon: state file %s is a %q document, want %q", b.statePath(), st.Schema, StateSchema)
	}
	if err := st.validate(); err != nil {
		return fmt.Errorf("daemon: state file %s is inconsistent: %v; the daemon does not start on it (it must not forget or give away "+
			"what it holds): check which functions are on vfio-pci (lspci -k) and which domains run (virsh list), then fix the file or move it away", b.statePath(), err)
	}
	if st.Domains == nil {
		st.Domains = map[string]*domainState{}
	}
	for _, d := range st.Domains {
		if d.Devices == nil {
			d.Devices = map[string]*heldDevice{}
		}
	}
	b.st = st
	b.log.Info("state loaded", "path", b.statePath(), "domains", len(st.Domains))
	return nil
}

// saveLocked writes the state atomically and durably (statedir.WriteFile); b.mu is held.
func (b *GateBackend) saveLocked() error {
	if b.o.StateDir == "" {
		return nil
	}
	b.st.Schema = StateSchema
	data, err := json.MarshalIndent(&b.st, "", "  ")
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	root, err := statedir.Open(b.o.StateDir)
	if err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	defer root.Close()
	if err := statedir.WriteFile(root, StateFileName, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("daemon: state: %w", err)
	}
	return nil
}
