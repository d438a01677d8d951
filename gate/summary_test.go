package gate_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/pci"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
	"github.com/vfio-gate/vfio-gate/vfio"
)

func TestSummarize(t *testing.T) {
	allow := gate.Decision{Verdict: policy.Verdict{Allow: true}, Recorded: true}
	deny := func(codes ...policy.Code) gate.Decision {
		d := gate.Decision{Recorded: true}
		for _, c := range codes {
			d.Verdict.Reasons = append(d.Verdict.Reasons, policy.Reason{Code: c})
		}
		return d
	}
	tpmErr := gate.Decision{Verdict: policy.Verdict{Allow: true}, Err: fmt.Errorf("extend: %w", tpm.ErrTPM), Recorded: true}
	notRecorded := gate.Decision{Verdict: policy.Verdict{Allow: true}, Err: errors.New("log write")}
	bindErr := gate.Decision{Verdict: policy.Verdict{Allow: true}, Err: vfio.ErrNoVFIODriver, Recorded: true}
	for _, c := range []struct {
		name string
		ds   []gate.Decision
		want gate.Summary
	}{
		{"none", nil, gate.Summary{}},
		{"all allowed", []gate.Decision{allow, allow}, gate.Summary{}},
		{"audit-mode would-deny", []gate.Decision{{Verdict: policy.Verdict{Allow: true, WouldDeny: true,
			Reasons: []policy.Reason{{Code: policy.CodeNoCMA}}}, Recorded: true}}, gate.Summary{}},
		{"deny without reasons", []gate.Decision{allow, deny()}, gate.Summary{Class: policy.ClassDenied}},
		{"unavailable", []gate.Decision{deny(policy.CodeTimeout)}, gate.Summary{Class: policy.ClassUnavailable}},
		{"attestation beats unavailable", []gate.Decision{deny(policy.CodeTimeout), deny(policy.CodeSignatureInvalid)},
			gate.Summary{Class: policy.ClassAttestation}},
		{"deny beats attestation", []gate.Decision{deny(policy.CodeSignatureInvalid, policy.CodeNoRule)}, gate.Summary{Class: policy.ClassDenied}},
		{"tpm reason", []gate.Decision{deny(policy.CodeNoRule), deny(policy.CodeTPM)}, gate.Summary{Class: policy.ClassTPM}},
		{"tpm reason, then a deny without reasons", []gate.Decision{deny(policy.CodeTPM), deny()}, gate.Summary{Class: policy.ClassTPM}},
		{"unknown code is a deny", []gate.Decision{deny("no-such-code")}, gate.Summary{Class: policy.ClassDenied}},
		{"tpm error", []gate.Decision{allow, tpmErr}, gate.Summary{TPMFailed: true}},
		{"not recorded", []gate.Decision{notRecorded}, gate.Summary{TPMFailed: true}},
		{"bind error", []gate.Decision{bindErr, deny(policy.CodeLockdown)}, gate.Summary{BindFailed: true, Class: policy.ClassUnavailable}},
		{"both", []gate.Decision{bindErr, tpmErr}, gate.Summary{TPMFailed: true, BindFailed: true}},
	} {
		if got := gate.Summarize(c.ds); got != c.want {
			t.Errorf("%s: Summarize = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSummarizeReleases(t *testing.T) {
	ok := gate.Released{Recorded: true}
	tpmErr := gate.Released{Err: fmt.Errorf("record: %w", tpm.ErrTPM)}
	logErr := gate.Released{Err: fmt.Errorf("record: %w", &tpm.LogError{Path: "x", Msg: "open"})}
	vfioErr := gate.Released{Err: vfio.ErrNotBound}
	for _, c := range []struct {
		name string
		rs   []gate.Released
		want gate.Summary
	}{
		{"none", nil, gate.Summary{}},
		{"ok", []gate.Released{ok, ok}, gate.Summary{}},
		{"tpm", []gate.Released{ok, tpmErr}, gate.Summary{TPMFailed: true}},
		{"log", []gate.Released{logErr}, gate.Summary{TPMFailed: true}},
		{"vfio", []gate.Released{vfioErr, ok}, gate.Summary{BindFailed: true}},
		{"both", []gate.Released{vfioErr, logErr}, gate.Summary{TPMFailed: true, BindFailed: true}},
	} {
		if got := gate.SummarizeReleases(c.rs); got != c.want {
			t.Errorf("%s: SummarizeReleases = %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestSummarizeError(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want gate.Summary
		ok   bool
	}{
		{"nil", nil, gate.Summary{}, false},
		{"unknown", errors.New("something"), gate.Summary{}, false},
		{"policy", fmt.Errorf("load: %w", &policy.Error{File: "p.yaml", Msg: "bad"}), gate.Summary{}, false},
		{"throwaway TPM refused", fmt.Errorf("open: %w", gate.ErrThrowawayTPM), gate.Summary{}, false},
		{"gate TPM", fmt.Errorf("open: %w", gate.ErrTPM), gate.Summary{TPMFailed: true}, true},
		{"tpm", fmt.Errorf("extend: %w", tpm.ErrTPM), gate.Summary{TPMFailed: true}, true},
		{"audit", fmt.Errorf("x: %w", gate.ErrAuditUnavailable), gate.Summary{Class: policy.ClassUnavailable}, true},
		{"no device", fmt.Errorf("x: %w", pci.ErrNoDevice), gate.Summary{Class: policy.ClassUnavailable}, true},
		{"removed", pci.ErrDeviceRemoved, gate.Summary{Class: policy.ClassUnavailable}, true},
		{"lockdown", pci.ErrLockdown, gate.Summary{Class: policy.ClassUnavailable}, true},
		{"cap", pci.ErrNeedCapSysAdmin, gate.Summary{Class: policy.ClassUnavailable}, true},
		{"vfio no device", vfio.ErrNoDevice, gate.Summary{Class: policy.ClassUnavailable}, true},
		{"bind", fmt.Errorf("bind: %w", vfio.ErrNoVFIODriver), gate.Summary{BindFailed: true}, true},
	} {
		got, ok := gate.SummarizeError(c.err)
		if got != c.want || ok != c.ok {
			t.Errorf("%s: SummarizeError = %+v, %v; want %+v, %v", c.name, got, ok, c.want, c.ok)
		}
	}
}
