package main

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/gate"
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
