package daemon

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// adoptOwner is a TDIOwner whose Adopt answers with report or err and
// records what it was handed.
type adoptOwner struct {
	TDIOwner // nil: only Adopt and Stop are called
	report   []byte
	err      error
	released bool
	stopped  pci.BDF
}

func (o *adoptOwner) Adopt(_ context.Context, _ pci.BDF, owner string, s tdisp.OwnedSession, release func(), _ tdisp.LockParams) (*tdisp.InterfaceReport, []byte, error) {
	if owner != "vm1" || s == nil {
		return nil, nil, errors.New("wrong owner or no session")
	}
	release()
	o.released = true
	if o.err != nil {
		return nil, nil, o.err
	}
	return &tdisp.InterfaceReport{}, o.report, nil
}

func (o *adoptOwner) Stop(_ context.Context, b pci.BDF) error { o.stopped = b; return nil }

// TestTDIKeeper: the adapter hands the attested session and its release to
// the owner, gives the TDI's state as CONFIG_LOCKED with the raw report
// when the owner locked it, passes a refusal through with no state, and
// forwards Stop.
func TestTDIKeeper(t *testing.T) {
	ctx := t.Context()
	b := pci.BDF{Bus: 1}
	o := &adoptOwner{report: []byte{1, 2, 3}}
	k := tdiKeeper{o}
	state, report, err := k.Adopt(ctx, b, "vm1", &attest.Held{}, func() {})
	if err != nil || state != "CONFIG_LOCKED" || !bytes.Equal(report, o.report) || !o.released {
		t.Fatalf("locked: %q %x %v (released %v)", state, report, err, o.released)
	}
	o.err = errors.New("device refused LOCK_INTERFACE")
	state, report, err = k.Adopt(ctx, b, "vm1", &attest.Held{}, func() {})
	if !errors.Is(err, o.err) || state != "" || report != nil {
		t.Fatalf("refused: %q %x %v", state, report, err)
	}
	if err := k.Stop(ctx, b); err != nil || o.stopped != b {
		t.Fatalf("stop: %v, stopped %v", err, o.stopped)
	}
}
