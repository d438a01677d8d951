package gate

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/audit"
	"github.com/vfio-gate/vfio-gate/pci"
)

// AccessWatcher reports config-space accesses to a function while the gate
// attests it (Options.Watcher). *audit.Watcher implements it over the eBPF
// audit monitor.
type AccessWatcher interface {
	// Watch starts recording accesses to bdf. stop returns them once every
	// access made before it was called has been seen; its error says the
	// record may be incomplete (and the gate then denies: fail closed).
	Watch(ctx context.Context, bdf pci.BDF) (stop func(context.Context) ([]audit.Access, error), err error)
}

// watchStopTimeout bounds waiting for the audit to catch up after an
// attestation (Monitor.Sync normally takes milliseconds).
const watchStopTimeout = 5 * time.Second

// doeCapLen is the size of a DOE extended capability (PCIe r6.0 §7.9.24).
const doeCapLen = 0x18

// tamperWatch is one function's watch during its attestation.
type tamperWatch struct {
	stop func(context.Context) ([]audit.Access, error)
	err  error // Watch itself failed
	done bool
}

// startWatch starts watching bdf when the gate has a Watcher (nil otherwise).
func (g *Gate) startWatch(ctx context.Context, bdf pci.BDF) *tamperWatch {
	if g.o.Watcher == nil {
		return nil
	}
	stop, err := g.o.Watcher.Watch(ctx, bdf)
	return &tamperWatch{stop: stop, err: err}
}

// cancel stops a watch whose result is not needed (early returns).
func (w *tamperWatch) cancel(ctx context.Context) {
	if w == nil || w.done || w.stop == nil {
		return
	}
	w.done = true
	_, _ = w.stop(ctx)
}

// endWatch stops w and, when a process other than this one touched the
// function's DOE mailbox registers during the attestation, or the watch
// cannot vouch that none did, makes ev fail with kind mailbox-tampered, so
// the policy denies it with reason mailbox-tampered (and the TPM records the
// tampered evidence). A failure attestation had already hit is quoted in
// the message: it may be the tamperer's doing.
func (g *Gate) endWatch(ctx context.Context, w *tamperWatch, fn *pci.Function, ev *attest.Evidence) {
	if w == nil || w.done {
		return
	}
	w.done = true
	var accesses []audit.Access
	err := w.err
	if err == nil {
		// The caller's deadline may have passed during attestation; the
		// barrier gets a bound of its own.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), watchStopTimeout)
		accesses, err = w.stop(sctx)
		cancel()
	}
	self := uint32(os.Getpid())
	doe, known := doeOffsets(fn, ev)
	var foreign []audit.Access
	for _, a := range accesses {
		if a.PID == self {
			continue
		}
		if !known || slices.ContainsFunc(doe, func(d uint16) bool {
			return a.Offset < uint32(d)+doeCapLen && a.Offset+uint32(a.Size) > uint32(d)
		}) {
			foreign = append(foreign, a)
		}
	}
	var msg string
	switch {
	case len(foreign) > 0:
		msg = describeTamper(foreign, known)
		if err != nil {
			msg += "; the record is also incomplete: " + err.Error()
		}
	case err != nil:
		msg = "the config-space audit cannot vouch that no other process touched the DOE mailbox: " + err.Error()
	default:
		return
	}
	if f := ev.Failure; f != nil {
		msg += fmt.Sprintf(" (attestation had stopped at %s: %s: %s)", f.Step, f.Kind, f.Message)
	}
	ev.Failure = &attest.Failure{Step: "audit", Kind: attest.FailMailboxTampered, Message: msg}
}

// doeOffsets returns the function's DOE capability offsets, from the
// evidence and from its config space; known is false when neither could say
// (then any access by another process counts).
func doeOffsets(fn *pci.Function, ev *attest.Evidence) (offs []uint16, known bool) {
	for _, m := range ev.DOE {
		offs = append(offs, m.Offset)
	}
	known = len(offs) > 0
	if fn != nil {
		if cfg, c, err := fn.OpenConfigReadOnly(); err == nil {
			if caps, err := pci.ExtCapabilities(cfg); err == nil {
				offs = append(offs, pci.FindExt(caps, pci.ExtCapIDDOE)...)
				known = true
			}
			c.Close()
		}
	}
	slices.Sort(offs)
	return slices.Compact(offs), known
}

func describeTamper(as []audit.Access, known bool) string {
	where := "the DOE mailbox"
	if !known {
		where = "the config space (DOE layout unknown)"
	}
	var parts []string
	for i, a := range as {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(as)-3))
			break
		}
		parts = append(parts, fmt.Sprintf("pid %d (%s) %s %#x/%d via %s", a.PID, a.Comm, a.Op, a.Offset, a.Size, a.Path))
	}
	return fmt.Sprintf("%d access(es) to %s by other processes during attestation: %s", len(as), where, strings.Join(parts, ", "))
}
