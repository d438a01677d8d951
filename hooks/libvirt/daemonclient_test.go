package libvirt

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
)

// phaseBackend answers check as the daemon would for managed='yes'
// functions on a host driver: deferred at prepare, its verdict at start.
type phaseBackend struct {
	daemon.Backend // other methods: not called
	mu             sync.Mutex
	reqs           []daemon.CheckRequest
	atStart        string
}

func (p *phaseBackend) Check(_ context.Context, req daemon.CheckRequest) (*daemon.CheckResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, req)
	r := &daemon.CheckResponse{Decision: "allow"}
	for _, b := range req.BDFs {
		d := daemon.DeviceDecision{BDF: b, Decision: "allow", Reasons: []daemon.Reason{}}
		if slices.Contains(req.Managed, b) {
			d.Decision = daemon.DecisionDeferred
			if req.Phase == daemon.PhaseStart {
				d.Decision = p.atStart
			}
		}
		switch {
		case d.Decision == "deny":
			r.Decision = "deny"
		case d.Decision == daemon.DecisionDeferred && r.Decision == "allow":
			r.Decision = daemon.DecisionDeferred
		}
		r.Devices = append(r.Devices, d)
	}
	return r, nil
}

// TestDaemonClientPhases: the adapter sends the phase and the managed
// functions over the real API, and a deferred answer passes only at prepare.
func TestDaemonClientPhases(t *testing.T) {
	testutil.Require(t, testutil.Root) // the daemon serves root peers only
	pb := &phaseBackend{}
	sock := gatetest.ServeDaemon(t, pb)
	c := DaemonClient{C: daemon.NewClient(sock)}
	devs := []HostPCI{{BDF: bdf("0000:3b:00.0"), Managed: true}, {BDF: bdf("0000:3b:00.1"), Managed: false}}
	r, err := c.Check(t.Context(), CheckRequest{Domain: "vm1", Devices: devs, Phase: PhasePrepare})
	if err != nil || !r.Allow || r.Devices[0].Decision != DecisionDeferred {
		t.Fatalf("prepare: %+v %v", r, err)
	}
	got := pb.reqs[0]
	if got.Phase != daemon.PhasePrepare || len(got.Managed) != 1 || got.Managed[0] != devs[0].BDF || len(got.BDFs) != 2 {
		t.Fatalf("daemon saw %+v", got)
	}
	pb.atStart = daemon.DecisionDeferred
	if r, err := c.Check(t.Context(), CheckRequest{Domain: "vm1", Devices: devs, Phase: PhaseStart}); err != nil || r.Allow {
		t.Fatalf("deferred at start: %+v %v", r, err)
	}
	pb.atStart = "allow"
	if r, err := c.Check(t.Context(), CheckRequest{Domain: "vm1", Devices: devs, Phase: PhaseStart}); err != nil || !r.Allow {
		t.Fatalf("allowed at start: %+v %v", r, err)
	}
	if pb.reqs[2].Phase != daemon.PhaseStart {
		t.Fatalf("phase sent %q", pb.reqs[2].Phase)
	}
}
