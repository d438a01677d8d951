//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// doctorJSON is `vfio-gate doctor --json`.
type doctorJSON struct {
	Schema string `json:"schema"`
	OK     bool   `json:"ok"`
	Checks []struct {
		Name    string `json:"name"`
		Status  string `json:"status"`
		Message string `json:"message"`
		Fix     string `json:"fix"`
	} `json:"checks"`
}

// runDoctor runs doctor --json with args and returns its report by check
// name (status: message), its exit code and the raw output.
func (h *Harness) runDoctor(ctx context.Context, args ...string) (map[string]string, int, string, error) {
	out, errOut, code := h.run(ctx, append([]string{"doctor", "--json"}, args...)...)
	var rep doctorJSON
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		return nil, code, out, fmt.Errorf("doctor --json (exit %d): %v: %q %q", code, err, clip(out, 300), clip(errOut, 300))
	}
	if rep.Schema != "vfio-gate/doctor/v1" {
		return nil, code, out, fmt.Errorf("doctor schema %q", rep.Schema)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		got[c.Name] = c.Status + ": " + c.Message
	}
	if rep.OK != (code == 0) {
		return got, code, out, fmt.Errorf("doctor ok=%v but exit %d", rep.OK, code)
	}
	return got, code, out, nil
}

func summarize(m map[string]string) string {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, n+"="+strings.SplitN(m[n], ":", 2)[0])
	}
	return strings.Join(parts, " ")
}

// doctorHost (issue 16): on the guest's real kernel, with the libvirt
// stack up (daemon running, hook installed, libvirtd answering), doctor
// passes its IOMMU, vfio-pci, TPM, daemon and libvirt checks and exits 0;
// pointed at a daemon socket where nothing listens it warns on "daemon".
func doctorHost(ctx context.Context, h *Harness) Result {
	if _, err := h.lvUp(ctx); err != nil {
		return failf("libvirt stack not up: %v", err)
	}
	common := []string{"--policy", lvPolicy, "--state-dir", lvState, "--tpm", "/dev/tpmrm0", "--libvirt-dir", lvDir}
	got, code, raw, err := h.runDoctor(ctx, append(common, "--daemon-socket", lvDaemonSock)...)
	if err != nil {
		return failf("%v", err)
	}
	for _, name := range []string{"iommu", "vfio-pci", "tpm", "daemon", "libvirt", "policy", "state-dir", "lockdown"} {
		if !strings.HasPrefix(got[name], "ok:") {
			return failf("doctor %s is %q, want ok; report: %s", name, got[name], clip(raw, 1500))
		}
	}
	if code != 0 {
		return failf("doctor exit %d with every check ok: %s", code, clip(raw, 800))
	}
	down, dcode, raw2, err := h.runDoctor(ctx, append(common, "--daemon-socket", "/run/vfio-gate/nobody.sock")...)
	if err != nil {
		return failf("%v", err)
	}
	// Not running is a warning, not a failure: the install steps run doctor
	// before the daemon is started (docs/install.md).
	if !strings.HasPrefix(down["daemon"], "warn:") {
		return failf("doctor with no daemon: daemon %q, exit %d, want a warning: %s", down["daemon"], dcode, clip(raw2, 800))
	}
	return passf("doctor: %s (exit 0); with no daemon: %s (exit %d)", summarize(got), down["daemon"], dcode)
}

// doctorLockdown (issue 16, lockdown boot): doctor reads the kernel's
// lockdown=integrity and warns that user-space DOE cannot run.
func doctorLockdown(ctx context.Context, h *Harness) Result {
	got, _, raw, err := h.runDoctor(ctx, "--tpm", "/dev/tpmrm0")
	if err != nil {
		return failf("%v", err)
	}
	if !strings.HasPrefix(got["lockdown"], "warn:") || !strings.Contains(got["lockdown"], "integrity") {
		return failf("doctor lockdown is %q, want a warning naming integrity: %s", got["lockdown"], clip(raw, 800))
	}
	return passf("doctor lockdown: %s", got["lockdown"])
}
