package daemon_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/pci"
)

// countingBackend answers every check with allow and counts them.
type countingBackend struct {
	daemon.Backend
	checks atomic.Int32
}

func (c *countingBackend) Check(context.Context, daemon.CheckRequest) (*daemon.CheckResponse, error) {
	c.checks.Add(1)
	return &daemon.CheckResponse{Decision: "allow"}, nil
}

func (c *countingBackend) Status(context.Context) (*daemon.Status, error) {
	return &daemon.Status{Policy: "/p.yaml", TDISP: "available"}, nil
}

// TestStartingWaitsForReady: while the daemon starts, a check waits (it
// reaches the backend only after Ready), status answers at once with
// ready=false and the phase, and a wait past Wait is a 503 "starting".
func TestStartingWaitsForReady(t *testing.T) {
	b := &countingBackend{}
	s := &daemon.Starting{Backend: b, TPM: "/dev/tpmrm0", Policy: "/p.yaml", Wait: 5 * time.Second}
	s.SetPhase("recovering the TDISP journal")
	st, err := s.Status(t.Context())
	if err != nil || st.Ready || st.Phase != "recovering the TDISP journal" || st.TPM != "/dev/tpmrm0" {
		t.Fatalf("status while starting: %+v %v", st, err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Check(t.Context(), daemon.CheckRequest{BDFs: []pci.BDF{}})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if n := b.checks.Load(); n != 0 {
		t.Fatalf("a check reached the backend before Ready (%d)", n)
	}
	s.Ready()
	select {
	case err := <-done:
		if err != nil || b.checks.Load() != 1 {
			t.Fatalf("check after Ready: %v, %d checks", err, b.checks.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("check still waiting after Ready")
	}
	st, err = s.Status(t.Context())
	if err != nil || !st.Ready || st.TPM != "/dev/tpmrm0" || st.TDISP != "available" {
		t.Fatalf("status when ready: %+v %v", st, err)
	}

	slow := &daemon.Starting{Backend: b, Wait: 20 * time.Millisecond}
	_, err = slow.Check(t.Context(), daemon.CheckRequest{})
	var ae *daemon.APIError
	if !errors.As(err, &ae) || ae.Code != daemon.CodeStarting || ae.Status != 503 {
		t.Fatalf("check past the wait: %v", err)
	}
}
