package daemon_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/tdisp"
)

// lossyBroker is a TDISP session owner whose sessions die while the daemon
// starts: one right inside its constructor, one from a goroutine of its
// own, as a keeper goroutine's Lost may fire at any time after NewBroker.
// Its journal recovery finds one TDI an earlier run left locked.
type lossyBroker struct {
	*fakeOwner
	done   chan struct{}
	closed bool
}

func (l *lossyBroker) Recover(context.Context, func(string) bool) ([]tdisp.RecoverResult, error) {
	return []tdisp.RecoverResult{{Entry: tdisp.JournalEntry{BDF: "0000:3d:00.0", Owner: "old-vm", State: tdisp.StateRun}, Action: "stopped"}}, nil
}

func (l *lossyBroker) Close(context.Context) error {
	<-l.done
	l.closed = true
	return nil
}

// TestRunReportsLostSessionsAtStart: daemon.Run wires the TDISP session
// owner's Lost callback to the reports before the backend exists, so a
// session lost at any moment of the start is in status (the callback used
// to read a backend variable assigned after the broker: a report then was
// dropped, and -race flags the unsynchronised read). It also checks the
// lifecycle: STATUS=recovering then READY=1, the recovery reported, the
// socket removed when ctx ends.
func TestRunReportsLostSessionsAtStart(t *testing.T) {
	testutil.Require(t, testutil.Root) // the daemon answers root peers only
	w := newWorld(t)
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"),
		StateDir: w.stateDir, Attest: attest.Options{Timeout: 5 * time.Second}})
	must(t, err)
	lost := errors.New("device reset")
	var br *lossyBroker
	newBroker := func(c tdisp.BrokerConfig) (daemon.Broker, error) {
		if c.Lost == nil || c.Journal == nil {
			t.Errorf("broker config without Lost or Journal: %+v", c)
		}
		br = &lossyBroker{fakeOwner: &fakeOwner{held: map[pci.BDF]*tdisp.Held{}, dev: map[pci.BDF]tdisp.State{}}, done: make(chan struct{})}
		br.held[bdf(t, goodBDF)] = &tdisp.Held{BDF: bdf(t, goodBDF), Owner: "vm-sync", State: tdisp.StateConfigLocked, Err: lost}
		c.Lost(bdf(t, goodBDF), "vm-sync", lost)
		go func() {
			defer close(br.done)
			c.Lost(bdf(t, hostBDF), "vm-async", lost)
		}()
		return br, nil
	}
	sock := filepath.Join(w.dir, "run", "d.sock")
	var mu sync.Mutex
	var notes []string
	ready := make(chan struct{})
	cfg := daemon.Config{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, Socket: sock, Poll: time.Hour, TPM: "test",
		Metrics: daemon.NewMetrics(daemon.MetricsOptions{}), MetricsListen: "127.0.0.1:0",
		Notify: func(s string) {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, s)
			if strings.HasPrefix(s, "READY=1") {
				close(ready)
			}
		}}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- daemon.Run(ctx, daemon.WithBroker(cfg, newBroker)) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no READY=1")
	}
	c := daemon.NewClient(sock)
	var kinds map[string]string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st, err := c.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Ready || st.TPM != "test" {
			t.Fatalf("status after READY=1: ready %v, TPM %q", st.Ready, st.TPM)
		}
		kinds = map[string]string{}
		for _, r := range st.Reports {
			kinds[r.Kind+" "+r.Domain] = r.Message
		}
		if len(kinds) == 3 || time.Now().After(deadline) {
			break
		}
	}
	for _, k := range []string{"tdisp-session-lost vm-sync", "tdisp-session-lost vm-async", "tdisp-recovered old-vm"} {
		if _, ok := kinds[k]; !ok {
			t.Errorf("no %q report; reports: %v", k, kinds)
		}
	}
	// The metrics' TDI gauges follow the broker Run made.
	text := scrape(t, &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}, "http://vfio-gate"+daemon.PathMetrics)
	if !strings.Contains(text, `vfio_gate_tdis_held{state="CONFIG_LOCKED"} 1`) || !strings.Contains(text, `vfio_gate_sessions_held{health="lost"} 1`) {
		t.Errorf("metrics do not show the broker's TDI:\n%s", text)
	}
	if m := kinds["tdisp-session-lost vm-sync"]; !strings.Contains(m, "device reset") || !strings.Contains(m, goodBDF) {
		t.Errorf("lost-session report %q: want the BDF and the cause", m)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not stop")
	}
	if !br.closed {
		t.Error("the broker was not closed")
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(notes) < 3 || !strings.HasPrefix(notes[0], "STATUS=recovering") || notes[len(notes)-1] != "STOPPING=1" {
		t.Errorf("notifications %q: want STATUS=recovering..., READY=1..., STOPPING=1", notes)
	}
}

// TestRunRefusesBadConfig: no poll interval, or a state file that does not
// load, and Run returns an error without listening.
func TestRunRefusesBadConfig(t *testing.T) {
	w := newWorld(t)
	g, err := gate.New(gate.Options{System: w.sys, Policy: w.pol, Recorder: w.rec, LockDir: filepath.Join(w.dir, "locks"), StateDir: w.stateDir})
	must(t, err)
	sock := filepath.Join(w.dir, "run", "d.sock")
	cfg := daemon.Config{Gate: g, Recorder: w.rec, System: w.sys, StateDir: w.stateDir, Socket: sock, Notify: func(string) {},
		OpenSession: func(context.Context, pci.BDF) (tdisp.OwnedSession, func(), error) {
			return nil, nil, errors.New("no sessions here")
		}}
	if err := daemon.Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "Poll") {
		t.Fatalf("Run without Poll: %v", err)
	}
	cfg.Poll = time.Hour
	must(t, os.MkdirAll(w.stateDir, 0o700))
	must(t, os.WriteFile(filepath.Join(w.stateDir, daemon.StateFileName), []byte("{not json"), 0o600))
	if err := daemon.Run(t.Context(), cfg); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("Run on a corrupt state file: %v", err)
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Fatalf("Run listened before refusing: %v", err)
	}
}
