//go:build !(linux && amd64)

package audit

import (
	"context"
	"log/slog"
)

// Monitor is unavailable on this platform.
type Monitor struct{}

// Options configure a Monitor.
type Options struct {
	Logger *slog.Logger
	Mode   Mode
}

// New fails: the committed BPF object is built for linux/amd64 only.
func New(Options) (*Monitor, error) { return nil, ErrNotSupported }

func (m *Monitor) Guard(string) error                       { return ErrNotSupported }
func (m *Monitor) Unguard(string) error                     { return ErrNotSupported }
func (m *Monitor) Attach() ([]string, error)                { return nil, ErrNotSupported }
func (m *Monitor) Run(context.Context, func(*Access)) error { return ErrNotSupported }
func (m *Monitor) Lost() (uint64, error)                    { return 0, ErrNotSupported }
func (m *Monitor) Close() error                             { return nil }
func (m *Monitor) Mode() Mode                               { return "" }
func (m *Monitor) Sync(context.Context) error               { return ErrNotSupported }
func (m *Monitor) Started() <-chan struct{}                 { return nil }
