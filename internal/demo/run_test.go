package demo

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// TestRun: the whole demo over the simulator goes as expected, narrates
// the libvirt part, hands the decisions over before it, and its log
// verifies.
func TestRun(t *testing.T) {
	w, err := Build(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state := w.StateDir()
	h, err := gate.Open(gate.Setup{Policy: w.Policy, PolicyLoad: &policy.LoadOptions{SkipPermissionCheck: true}, TPM: gate.SimThrowaway,
		EventLog: filepath.Join(state, "events"), Evidence: filepath.Join(state, "evidence"), SysfsRoot: w.Sysfs,
		PCI: pci.Options{ConfigOpener: w.Opener, Geteuid: func() int { return 0 }}, LockDir: w.LockDir(), StateDir: state,
		Concurrency: gate.DefaultConcurrency, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var out strings.Builder
	var checked []gate.Decision
	r, err := Run(context.Background(), RunConfig{World: w, Host: h, EventLog: filepath.Join(state, "events"),
		EvidenceDir: filepath.Join(state, "evidence"), Out: &out, Checked: func(ds []gate.Decision) {
			checked = ds
			if out.Len() != 0 {
				t.Error("Checked called after the libvirt part started")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Err(); err != nil || !r.AsExpected() || !r.OK {
		t.Fatalf("Err %v, AsExpected %v: %+v", err, r.AsExpected(), r)
	}
	if len(checked) != 3 || len(r.Decisions) != 3 || len(r.Expected) != 3 || len(r.Libvirt) == 0 {
		t.Errorf("checked %d, decisions %d, expected %d, hook steps %d", len(checked), len(r.Decisions), len(r.Expected), len(r.Libvirt))
	}
	if r.LogVerify == nil || r.LogVerify.Records == 0 {
		t.Errorf("log verify: %+v", r.LogVerify)
	}
	if !strings.Contains(out.String(), "$ virsh start") {
		t.Errorf("no libvirt narration:\n%s", out.String())
	}
}

// TestResultErr: the failures in their order of precedence.
func TestResultErr(t *testing.T) {
	ok := func() *Result {
		return &Result{Decisions: []gate.Decision{{Recorded: true, Verdict: policy.Verdict{Allow: true}}},
			LogVerify: &tpm.VerifyResult{OK: true}, OK: true}
	}
	if r := ok(); r.Err() != nil || !r.AsExpected() {
		t.Fatalf("as expected: %v", r.Err())
	}
	r := ok()
	r.OK = false
	if err := r.Err(); !errors.Is(err, ErrUnexpected) || errors.Is(err, tpm.ErrTPM) || r.AsExpected() {
		t.Errorf("unexpected outcome: %v", err)
	}
	r.LogVerify = &tpm.VerifyResult{Problems: []tpm.Problem{{Msg: "record 3: digest differs"}}}
	var le *LogError
	if err := r.Err(); !errors.As(err, &le) || !errors.Is(err, tpm.ErrTPM) || err.Error() != "demo: the event log does not verify: record 3: digest differs" {
		t.Errorf("log does not verify: %v", err)
	}
	verr := errors.New("tpm: read PCR")
	r.LogVerify, r.VerifyErr = nil, verr
	if err := r.Err(); err != verr || r.AsExpected() {
		t.Errorf("log not verified: %v", err)
	}
	r.Decisions[0].Err = errors.New("extend failed")
	r.Decisions[0].Recorded = false
	if err := r.Err(); !errors.Is(err, ErrTPMFailure) {
		t.Errorf("TPM failure: %v", err)
	}
}
