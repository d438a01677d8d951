package gatetest

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
)

// ServeDaemon serves b on the daemon's API over a unix socket in a fresh
// temporary directory until the test ends, and returns the socket path.
// The daemon answers root peers only: call testutil.Require(t, testutil.Root)
// first.
func ServeDaemon(t testing.TB, b daemon.Backend) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "run", "daemon.sock")
	ln, err := daemon.Listen(sock)
	Must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- daemon.Serve(ctx, ln, b, daemon.ServerOptions{}) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon serve: %v", err)
		}
	})
	return sock
}
