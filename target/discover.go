package target

import (
	"context"
	"errors"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Discovery is what DOE discovery found at one mailbox.
type Discovery struct {
	Offset   uint16
	Features []string // the names of the features the mailbox lists, in its order
	// Skipped says why discovery did not run ("" when it ran): the
	// per-function lock was not acquired, or the config space is read-only.
	Skipped string
	Err     error // the open or discovery failure
}

// Discover opens p (the per-function lock, who may drive the mailbox, a
// read-write config space) and returns DOE discovery's result at each of
// p.Offsets, in order. When the function cannot be opened, every result
// carries the error.
func Discover(ctx context.Context, p *PCI) []Discovery {
	out := make([]Discovery, len(p.Offsets))
	for i, off := range p.Offsets {
		out[i] = Discovery{Offset: off, Features: []string{}}
	}
	conn, err := p.Open(ctx)
	if err != nil {
		skip := ""
		var oe *OpenError
		if errors.As(err, &oe) {
			switch oe.Step {
			case StepLock:
				skip = "per-function lock not acquired: " + err.Error()
			case StepConfig:
				if errors.Is(err, pci.ErrReadOnlyConfig) {
					skip = "config space is read-only (no write permission)"
				}
			}
		}
		for i := range out {
			out[i].Skipped, out[i].Err = skip, err
		}
		return out
	}
	defer conn.Close()
	for _, mb := range conn.Mailboxes {
		for i := range out {
			if out[i].Offset != mb.Offset() {
				continue
			}
			out[i].Err = mb.Err
			for _, ft := range mb.Features {
				out[i].Features = append(out[i].Features, ft.Name())
			}
		}
	}
	return out
}
