package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/vfio-gate/vfio-gate/pci"
)

// Watcher fans the accesses one Monitor reports out to watches of single
// functions. The gate watches a function while it attests it: any access to
// the DOE mailbox by another process is a tamper signal. Run must be running
// for Watch's stop to return.
type Watcher struct {
	m    *Monitor
	self uint32 // this process: its own accesses are never kept

	mu      sync.Mutex
	watches map[string]map[*watch]struct{} // by device name
}

type watch struct {
	got     []Access
	dropped int // accesses beyond MaxKept
}

// MaxKept bounds the accesses one watch keeps (a process hammering a
// function must not grow the gate's memory without bound); a watch that
// had to drop some reports it as an error from stop.
const MaxKept = 1024

// NewWatcher returns a Watcher over m, which must be attached
// (Monitor.Attach). Accesses by the calling process itself are not kept.
func NewWatcher(m *Monitor) *Watcher {
	return &Watcher{m: m, self: uint32(os.Getpid()), watches: map[string]map[*watch]struct{}{}}
}

// Run dispatches events until ctx ends (it is the Monitor's Run).
func (w *Watcher) Run(ctx context.Context) error {
	return w.m.Run(ctx, w.dispatch)
}

// dispatch hands one access to the watches of its device.
func (w *Watcher) dispatch(a *Access) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a.PID == w.self {
		return
	}
	for x := range w.watches[a.Device] {
		if len(x.got) < MaxKept {
			x.got = append(x.got, *a)
		} else {
			x.dropped++
		}
	}
}

// Start runs Run in the background and returns once it is reading events
// (or failed to start). wait ends it: cancel ctx, then call wait.
func (w *Watcher) Start(ctx context.Context) (wait func() error, err error) {
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.m.Started():
		return func() error { return <-done }, nil
	case err := <-done:
		if err == nil {
			err = errors.New("audit: the event reader stopped before it started")
		}
		return nil, err
	}
}

// Watch guards bdf and records every access to its config space by other
// processes until stop is called. stop waits until every access made before it was called has
// been seen (Monitor.Sync), unguards bdf when no other watch needs it, and
// returns the accesses. It fails, with the accesses kept, when the record
// may be incomplete: the sync failed, the kernel side lost events while the
// watch was open, or more than MaxKept accesses came in.
func (w *Watcher) Watch(ctx context.Context, bdf pci.BDF) (stop func(context.Context) ([]Access, error), err error) {
	dev := bdf.String()
	lost0, err := w.m.Lost()
	if err != nil {
		return nil, fmt.Errorf("audit: reading the lost counter: %w", err)
	}
	x := &watch{}
	// Guard and Unguard happen under mu, so a stop never unguards a
	// device another watch has just guarded.
	w.mu.Lock()
	if w.watches[dev] == nil {
		if err := w.m.Guard(dev); err != nil {
			w.mu.Unlock()
			return nil, fmt.Errorf("audit: guarding %s: %w", dev, err)
		}
		w.watches[dev] = map[*watch]struct{}{}
	}
	w.watches[dev][x] = struct{}{}
	w.mu.Unlock()
	var once sync.Once
	return func(ctx context.Context) ([]Access, error) {
		var got []Access
		var errs []error
		once.Do(func() {
			errs = append(errs, w.m.Sync(ctx))
			if lost1, err := w.m.Lost(); err != nil {
				errs = append(errs, fmt.Errorf("audit: reading the lost counter: %w", err))
			} else if lost1 != lost0 {
				errs = append(errs, fmt.Errorf("audit: %d events lost while %s was watched: the record is incomplete", lost1-lost0, dev))
			}
			errs = append(errs, w.remove(dev, x))
			got = x.got
			if x.dropped > 0 {
				errs = append(errs, fmt.Errorf("audit: %d more accesses to %s by other processes than the %d kept", x.dropped, dev, MaxKept))
			}
		})
		return got, errors.Join(errs...)
	}, nil
}

// remove drops x, and unguards dev when x was its last watch.
func (w *Watcher) remove(dev string, x *watch) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.watches[dev], x)
	if len(w.watches[dev]) > 0 {
		return nil
	}
	delete(w.watches, dev)
	return w.m.Unguard(dev)
}
