package main

import (
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/gate"
)

// TestRecordingCommandsRefuseSim: check records every decision, so --tpm sim
// alone is refused (usage error, nothing attested); sim:throwaway and
// --tpm-throwaway are the explicit ways to ask for it.
func TestRecordingCommandsRefuseSim(t *testing.T) {
	w, e, flags := demoEnv(t)
	good := w.Devices[0].BDF
	for i, f := range flags {
		if f == "sim:throwaway" {
			flags[i] = "sim"
		}
	}
	code, out, errs := runEnv(t, e, append([]string{"check", good}, flags...)...)
	if code != exitInternal || !strings.Contains(errs, "--tpm sim is an in-process TPM") || out != "" {
		t.Fatalf("check --tpm sim: exit %d out %q err %q", code, out, errs)
	}
	code, out, errs = runEnv(t, e, append([]string{"check", "--tpm-throwaway", good}, flags...)...)
	if code != 0 || !strings.Contains(out, "allow") {
		t.Fatalf("check --tpm sim --tpm-throwaway: exit %d out %q err %q", code, out, errs)
	}
}

func TestTPMName(t *testing.T) {
	for _, c := range []struct {
		g    globals
		want string
	}{
		{globals{tpm: "/dev/tpmrm0"}, "/dev/tpmrm0"},
		{globals{tpm: "sim"}, "sim (refused)"},
		{globals{tpm: "sim", tpmThrowaway: true}, "sim (THROWAWAY in-process simulator: records are lost at exit)"},
		{globals{tpm: "sim:throwaway"}, "sim (THROWAWAY in-process simulator: records are lost at exit)"},
	} {
		if got := gate.TPMName(c.g.tpm, c.g.tpmThrowaway); got != c.want {
			t.Errorf("gate.TPMName(%+v) = %q, want %q", c.g, got, c.want)
		}
	}
}
