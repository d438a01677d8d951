package libvirt

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/daemon"
)

// startingAPI plays a daemon coming up: not running for the first calls,
// then "starting" (503), then an allow.
type startingAPI struct {
	daemon.Backend
	down, starting int
	calls          int
}

func (s *startingAPI) Check(_ context.Context, req daemon.CheckRequest) (*daemon.CheckResponse, error) {
	s.calls++
	switch {
	case s.calls <= s.down:
		return nil, daemon.ErrNotRunning
	case s.calls <= s.down+s.starting:
		return nil, &daemon.APIError{Code: daemon.CodeStarting, Message: "recovering", Status: 503}
	}
	r := &daemon.CheckResponse{Decision: "allow"}
	for _, b := range req.BDFs {
		r.Devices = append(r.Devices, daemon.DeviceDecision{BDF: b, Decision: "allow"})
	}
	return r, nil
}

// TestDaemonClientWaitsForStartingDaemon: a daemon that is not up yet, then
// starting, is waited for inside the budget (it used to deny at once);
// one that never comes up denies with "not running" once the budget is spent.
func TestDaemonClientWaitsForStartingDaemon(t *testing.T) {
	api := &startingAPI{down: 3, starting: 2}
	c := DaemonClient{C: api, Poll: time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	r, err := c.Check(ctx, CheckRequest{Domain: "vm1", Devices: []HostPCI{{BDF: bdf("0000:3b:00.0")}}})
	if err != nil || !r.Allow || api.calls != 6 {
		t.Fatalf("check after start-up: %+v %v (calls %d)", r, err, api.calls)
	}

	never := &startingAPI{down: 1 << 30}
	c = DaemonClient{C: never, Poll: 5 * time.Millisecond}
	ctx, cancel = context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = c.Check(ctx, CheckRequest{Domain: "vm1", Devices: []HostPCI{{BDF: bdf("0000:3b:00.0")}}})
	if !errors.Is(err, ErrDaemonDown) || time.Since(start) < 90*time.Millisecond || never.calls < 2 {
		t.Fatalf("never up: %v after %v, %d calls", err, time.Since(start), never.calls)
	}
	h := &Hook{Client: DaemonClient{C: &startingAPI{down: 1 << 30}, Poll: 5 * time.Millisecond}, Budget: 50 * time.Millisecond}
	var stderr strings.Builder
	xml := `<domain type='kvm'><name>vm1</name><devices><hostdev mode='subsystem' type='pci'><source><address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/></source></hostdev></devices></domain>`
	if code := h.Run(t.Context(), []string{"vm1", "prepare", "begin", "-"}, strings.NewReader(xml), &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "not running") || !strings.Contains(stderr.String(), "budget") {
		t.Fatalf("hook with no daemon: exit %d %q", code, stderr.String())
	}
}

func (s *startingAPI) Release(context.Context, daemon.DomainRequest) error {
	s.calls++
	switch {
	case s.calls <= s.down:
		return daemon.ErrNotRunning
	case s.calls <= s.down+s.starting:
		return &daemon.APIError{Code: daemon.CodeStarting, Message: "recovering", Status: 503}
	}
	return nil
}

// TestReleaseWaitsOnlyForAStartingDaemon: release end waits for a daemon
// that is recovering, but not for one that is not running at all (it holds
// nothing now and reconciles with libvirt when it starts): a stopped
// daemon must not hold every domain stop for the whole budget.
func TestReleaseWaitsOnlyForAStartingDaemon(t *testing.T) {
	api := &startingAPI{starting: 3}
	c := DaemonClient{C: api, Poll: time.Millisecond}
	if err := c.Release(t.Context(), "vm1", nil); err != nil || api.calls != 4 {
		t.Fatalf("release while starting: %v after %d calls", err, api.calls)
	}
	down := &startingAPI{down: 1 << 30}
	c = DaemonClient{C: down, Poll: time.Millisecond}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := c.Release(ctx, "vm1", nil); !errors.Is(err, daemon.ErrNotRunning) || down.calls != 1 || time.Since(start) > time.Second {
		t.Fatalf("release with no daemon: %v, %d calls, %v", err, down.calls, time.Since(start))
	}
}
