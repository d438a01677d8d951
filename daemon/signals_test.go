package daemon_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// Config.Signals: one of them stops Run as the end of its context does
// (nil, the socket removed).
func TestRunStopsOnSignal(t *testing.T) {
	w := newWorld(t)
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"), StateDir: w.stateDir})
	must(t, err)
	sock := filepath.Join(w.dir, "run", "d.sock")
	ready := make(chan struct{})
	cfg := daemon.Config{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, Socket: sock, Poll: time.Hour,
		Signals: []os.Signal{syscall.SIGUSR1},
		Notify: func(s string) {
			if strings.HasPrefix(s, "READY=1") {
				close(ready)
			}
		},
		OpenSession: func(context.Context, pci.BDF) (tdisp.OwnedSession, func(), error) {
			return nil, nil, errors.New("no sessions here")
		}}
	done := make(chan error, 1)
	go func() { done <- daemon.Run(t.Context(), cfg) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no READY=1")
	}
	must(t, syscall.Kill(os.Getpid(), syscall.SIGUSR1))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop on its signal")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}
