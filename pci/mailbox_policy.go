package pci

import (
	"errors"
	"fmt"
	"os"
)

// Blockers of user-space DOE (ARCHITECTURE.md "Who may touch the mailbox").
// A *BlockedError unwraps to exactly one of them (or ErrLockdown).
var (
	ErrDriverOwnsMailbox = errors.New("pci: a kernel driver owns the mailbox")
	ErrTSMOwnsMailbox    = errors.New("pci: the platform TSM owns the mailbox")
	ErrNotRoot           = errors.New("pci: raw DOE needs root")
)

// BlockedError says why user space may not drive a function's DOE mailbox.
type BlockedError struct {
	BDF    BDF
	Reason string // human sentence naming the blocker and what to do
	Err    error  // ErrDriverOwnsMailbox, ErrTSMOwnsMailbox, ErrLockdown, ErrNotRoot or a read error
}

func (e *BlockedError) Error() string { return fmt.Sprintf("pci: %s: %s", e.BDF, e.Reason) }
func (e *BlockedError) Unwrap() error { return e.Err }

// VFIODriver is the only kernel driver under which user space may drive DOE.
const VFIODriver = "vfio-pci"

// MayDriveDOE returns nil when vfio-gate may drive f's DOE mailbox from user
// space: no driver or vfio-pci bound, tsm/connect empty, lockdown "none",
// running as root. Otherwise it returns a *BlockedError naming the first
// blocker. It reads the live lockdown state; driver and TSM come from f.
// Holding the per-function lock (LockFunction) and the mailbox not being
// Busy on entry are the caller's and the doe package's part.
func (s *System) MayDriveDOE(f *Function) error {
	if f.Driver != "" && f.Driver != VFIODriver {
		return &BlockedError{BDF: f.BDF, Err: ErrDriverOwnsMailbox,
			Reason: fmt.Sprintf("kernel driver %s owns the mailbox; unbind it first", f.Driver)}
	}
	if f.TSMConnect != "" {
		return &BlockedError{BDF: f.BDF, Err: ErrTSMOwnsMailbox,
			Reason: fmt.Sprintf("the platform TSM %q is connected (tsm/connect); use the kernel TSM path or disconnect it first", f.TSMConnect)}
	}
	mode, err := s.Lockdown()
	if err != nil {
		return &BlockedError{BDF: f.BDF, Err: err, Reason: "cannot read the kernel lockdown state: " + err.Error()}
	}
	if mode != "none" {
		return &BlockedError{BDF: f.BDF, Err: ErrLockdown,
			Reason: fmt.Sprintf("kernel lockdown is %q: config space writes are forbidden", mode)}
	}
	euid := os.Geteuid
	if s.opts.Geteuid != nil {
		euid = s.opts.Geteuid
	}
	if id := euid(); id != 0 {
		return &BlockedError{BDF: f.BDF, Err: ErrNotRoot,
			Reason: fmt.Sprintf("not running as root (euid %d): config space writes need root", id)}
	}
	return nil
}
