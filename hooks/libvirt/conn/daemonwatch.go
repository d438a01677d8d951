package conn

import (
	"context"
	"log/slog"
	"sync"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/policy"
)

// DaemonWatcher is the daemon's libvirt watcher (daemon.Watcher): it follows
// lifecycle events on a libvirtd connection (Watcher), hands them to a
// Monitor over the daemon's backend, and reconciles on every (re)connection
// and on every Reconcile (the daemon's poll).
type DaemonWatcher struct {
	w   *Watcher
	m   *Monitor
	log *slog.Logger

	mu  sync.Mutex
	cur *Conn // the current libvirtd connection (nil until connected)
}

var _ daemon.Watcher = (*DaemonWatcher)(nil)

// NewDaemonWatcher watches the libvirt at uri through socket for b;
// hotplug is the policy's libvirt.hotplug.
func NewDaemonWatcher(uri, socket string, b Holder, hotplug policy.Hotplug, log *slog.Logger) *DaemonWatcher {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &DaemonWatcher{m: &Monitor{Backend: b, Hotplug: hotplug, Logger: log}, log: log}
	d.w = &Watcher{URI: uri, Socket: socket, Logger: log, OnEvent: d.m.OnEvent,
		OnReconnect: func(ctx context.Context, c *Conn) {
			d.mu.Lock()
			d.cur = c
			d.mu.Unlock()
			log.Info("watching libvirt", "uri", uri)
			if err := d.m.Reconcile(ctx, c); err != nil {
				log.Warn("reconcile with libvirt failed", "err", err)
			}
		}}
	return d
}

// Run follows libvirt until ctx ends, reconnecting when libvirtd restarts.
func (d *DaemonWatcher) Run(ctx context.Context) { _ = d.w.Run(ctx) }

// Reconcile reconciles over the current connection; without one it does
// nothing (the watcher reconnects, and reconciles then).
func (d *DaemonWatcher) Reconcile(ctx context.Context) error {
	d.mu.Lock()
	c := d.cur
	d.mu.Unlock()
	if c == nil {
		return nil
	}
	return d.m.Reconcile(ctx, c)
}
