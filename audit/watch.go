package audit

import (
	"context"
	"time"
)

// WatchOptions say how Watch attaches, what it guards and for how long.
type WatchOptions struct {
	Options
	// Layouts are the functions to guard, by sysfs name (see Layouts);
	// each access's Region is classified against its function's layout.
	Layouts map[string]Layout
	// Duration ends the watch (0: when ctx ends).
	Duration time.Duration
}

// UnavailableError is a monitor that cannot load or attach here (no BTF,
// no permission, no probe mode the kernel allows, ...).
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return e.Err.Error() }

// Unwrap returns New's or Attach's error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Watch loads and attaches a monitor (a failure is an *UnavailableError),
// guards o.Layouts' functions and hands each of their accesses, its Region
// classified, to each until ctx ends or o.Duration has passed; the monitor
// is closed again. lost counts the events the ring buffer dropped while it
// ran.
func Watch(ctx context.Context, o WatchOptions, each func(*Access)) (lost uint64, err error) {
	m, err := New(o.Options)
	if err != nil {
		return 0, &UnavailableError{Err: err}
	}
	defer m.Close()
	for d := range o.Layouts {
		if err := m.Guard(d); err != nil {
			return 0, err
		}
	}
	tagged, err := m.Attach()
	if err != nil {
		return 0, &UnavailableError{Err: err}
	}
	if o.Logger != nil {
		o.Logger.Info("audit attached", "mode", m.Mode(), "path_taggers", tagged)
	}
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	err = m.Run(ctx, func(a *Access) {
		a.Region = Classify(a.Offset, a.Size, o.Layouts[a.Device])
		each(a)
	})
	lost, _ = m.Lost()
	return lost, err
}
