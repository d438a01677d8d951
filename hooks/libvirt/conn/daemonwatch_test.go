package conn

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/policy"
)

// TestDaemonWatcherUnconnected: while libvirtd is unreachable the daemon's
// poll reconciles nothing (no release of a held domain on a missing
// connection), and Run keeps retrying until ctx ends, then returns.
func TestDaemonWatcherUnconnected(t *testing.T) {
	h := &fakeHolder{times: map[string][2]time.Time{"vm1": {time.Now().Add(-time.Hour), time.Now().Add(-time.Hour)}}}
	d := NewDaemonWatcher("qemu:///system", filepath.Join(t.TempDir(), "absent.sock"), h, policy.HotplugDetach, nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	time.Sleep(150 * time.Millisecond) // a few dial attempts
	if err := d.Reconcile(ctx); err != nil || len(h.released) != 0 || len(h.reports) != 0 {
		t.Fatalf("reconcile without a connection: %v, released %v, reports %v", err, h.released, h.reports)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not end with its context")
	}
}
