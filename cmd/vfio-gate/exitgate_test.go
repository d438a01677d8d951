package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/demo"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// gate.Open's failures keep their exit codes now that exitCode maps them:
// a refused throwaway TPM is a usage error (1), a TPM that cannot record
// 5, a tamper audit that cannot run 4.
func TestExitCodeGateOpen(t *testing.T) {
	for _, c := range []struct {
		err  error
		want int
	}{
		{fmt.Errorf("open: %w", gate.ErrThrowawayTPM), exitInternal},
		{&gate.TPMError{Err: errors.New("tpm: open /dev/tpmrm0: no such file")}, exitTPM},
		{&gate.AuditError{Err: errors.New("audit: no BTF")}, exitUnavailable},
	} {
		if got := exitCode(c.err); got != c.want {
			t.Errorf("exitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	w, e, flags := demoEnv(t)
	for _, json := range []bool{false, true} {
		args := append([]string{"check", w.Devices[0].BDF}, flags...)
		args = append(args, "--tpm", "sim")
		if json {
			args = append(args, "--json")
		}
		code, out, errs := runEnv(t, e, args...)
		if code != exitInternal || !strings.HasPrefix(errs, "vfio-gate: --tpm sim is an in-process TPM") ||
			(json != strings.Contains(out, `"meaning": "usage or internal error"`)) {
			t.Errorf("check --tpm sim (json %v): exit %d, stdout %q, stderr %q", json, code, out, errs)
		}
	}
}

// The demo's failures keep their exit codes: a TPM failure 5 (quiet: the
// decisions show it), a log that does not verify 5, an unexpected outcome 1.
func TestDemoResultExit(t *testing.T) {
	ok := func() *demo.Result {
		return &demo.Result{Decisions: []gate.Decision{{Recorded: true, Verdict: policy.Verdict{Allow: true}}},
			LogVerify: &tpm.VerifyResult{OK: true}, OK: true}
	}
	if err := demoResult(ok()); err != nil {
		t.Fatalf("as expected: %v", err)
	}
	unexpected := ok()
	unexpected.OK = false
	bad := ok()
	bad.LogVerify = &tpm.VerifyResult{Problems: []tpm.Problem{{Msg: "x"}}}
	tpmFail := ok()
	tpmFail.Decisions[0].Err, tpmFail.Decisions[0].Recorded = errors.New("extend"), false
	for _, c := range []struct {
		r     *demo.Result
		code  int
		quiet bool
	}{{unexpected, exitInternal, false}, {bad, exitTPM, false}, {tpmFail, exitTPM, true}} {
		var errw strings.Builder
		if code := report(&errw, demoResult(c.r)); code != c.code || (errw.Len() == 0) != c.quiet {
			t.Errorf("%+v: exit %d, stderr %q; want %d, quiet %v", c.r, code, errw.String(), c.code, c.quiet)
		}
	}
}
