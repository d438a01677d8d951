package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/vfio-gate/vfio-gate/daemon"
	"github.com/vfio-gate/vfio-gate/internal/testutil"
	"github.com/vfio-gate/vfio-gate/internal/testutil/gatetest"
	"github.com/vfio-gate/vfio-gate/pci"
)

// tdiBackend answers the TDISP endpoints like a daemon holding one TDI.
type tdiBackend struct {
	daemon.Backend // other endpoints: not called
	mu             sync.Mutex
	calls          []string
	state          string
}

func (b *tdiBackend) answer(op string, req daemon.TDIRequest, next string) (*daemon.TDIStatus, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls = append(b.calls, op+" "+req.BDF.String()+" "+req.Domain)
	switch {
	case req.BDF.Bus == 0x66:
		return nil, &daemon.APIError{Code: "tdisp-failed", Status: 502, Message: "the device answered ERROR"}
	case op != "lock" && b.state == "":
		return nil, &daemon.APIError{Code: "not-held", Status: 404, Message: "TDI not held"}
	}
	if next != "" {
		b.state = next
	}
	return &daemon.TDIStatus{BDF: req.BDF, Domain: "vm1", State: b.state, SessionID: 0xfffeffff}, nil
}

func (b *tdiBackend) TDISPLock(_ context.Context, r daemon.TDIRequest) (*daemon.TDIStatus, error) {
	return b.answer("lock", r, "CONFIG_LOCKED")
}
func (b *tdiBackend) TDISPStart(_ context.Context, r daemon.TDIRequest) (*daemon.TDIStatus, error) {
	return b.answer("start", r, "RUN")
}
func (b *tdiBackend) TDISPState(_ context.Context, r daemon.TDIRequest) (*daemon.TDIStatus, error) {
	return b.answer("state", r, "")
}
func (b *tdiBackend) TDISPStop(_ context.Context, r daemon.TDIRequest) (*daemon.TDIStatus, error) {
	st, err := b.answer("stop", r, "CONFIG_UNLOCKED")
	b.state = ""
	return st, err
}

// TestTDISPThroughDaemon: tdisp lock/start/stop and state --daemon are
// clients of the daemon's TDISP endpoints; without a daemon they say they
// need it (exit 4); a device failure is exit 2, a refusal exit 1.
func TestTDISPThroughDaemon(t *testing.T) {
	none := filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"lock", "0000:3b:00.0", "--domain", "vm1"}, {"start", "0000:3b:00.0"}, {"stop", "0000:3b:00.0"},
		{"state", "--daemon", "0000:3b:00.0"}} {
		code, _, errs := runCLI(t, append([]string{"tdisp", "--daemon-socket", none}, args...)...)
		if code != exitUnavailable || !strings.Contains(errs, "needs the vfio-gate daemon") || !strings.Contains(errs, "systemctl start vfio-gate") {
			t.Errorf("%v without a daemon: exit %d %q", args, code, errs)
		}
	}
	if code, _, errs := runCLI(t, "tdisp", "lock"); code != exitInternal || !strings.Contains(errs, "accepts 1 arg") {
		t.Errorf("lock without BDF: exit %d %q", code, errs)
	}
	if code, _, errs := runCLI(t, "tdisp", "unlock", "0000:3b:00.0"); code != exitInternal || !strings.Contains(errs, `unknown command "unlock"`) {
		t.Errorf("unknown tdisp subcommand: exit %d %q", code, errs)
	}

	testutil.Require(t, testutil.Root) // the daemon serves root peers only
	be := &tdiBackend{}
	sock := gatetest.ServeDaemon(t, be)
	cli := func(args ...string) (int, string, string) {
		return runCLI(t, append([]string{"--daemon-socket", sock, "tdisp"}, args...)...)
	}
	if code, out, errs := cli("lock", "0000:3b:00.0", "--domain", "vm1"); code != 0 ||
		out != "0000:3b:00.0: TDI CONFIG_LOCKED for domain vm1, session 0xfffeffff (held by the daemon at "+sock+")\n" {
		t.Fatalf("lock: exit %d %q %q", code, out, errs)
	}
	code, out, _ := cli("start", "0000:3b:00.0", "--json")
	var st daemon.TDIStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != "RUN" || st.BDF != (pci.BDF{Bus: 0x3b}) {
		t.Fatalf("start --json: exit %d %q", code, out)
	}
	if code, out, _ := cli("state", "--daemon", "0000:3b:00.0"); code != 0 || !strings.Contains(out, "0000:3b:00.0: RUN (domain vm1") {
		t.Fatalf("state --daemon: exit %d %q", code, out)
	}
	if code, _, _ := cli("stop", "0000:3b:00.0"); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}
	if code, _, errs := cli("start", "0000:3b:00.0"); code != exitInternal || !strings.Contains(errs, "not-held") {
		t.Fatalf("start of a TDI not held: exit %d %q", code, errs)
	}
	if code, _, errs := cli("lock", "0000:66:00.0", "--domain", "vm1"); code != exitAttestation || !strings.Contains(errs, "tdisp-failed") {
		t.Fatalf("device failure: exit %d %q", code, errs)
	}
	want := []string{"lock 0000:3b:00.0 vm1", "start 0000:3b:00.0 ", "state 0000:3b:00.0 ", "stop 0000:3b:00.0 ", "start 0000:3b:00.0 ", "lock 0000:66:00.0 vm1"}
	if strings.Join(be.calls, "|") != strings.Join(want, "|") {
		t.Fatalf("daemon saw %q, want %q", be.calls, want)
	}
}
