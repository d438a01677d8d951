//go:build linux

package main

import (
	"context"
	"strings"
)

// scenarios lists every scenario in the order it runs. Order matters where a
// scenario leaves device state for the next (each says so in its comment):
// scan-bound needs cxl_pci bound, the kernel DOE scenarios unbind it.
func scenarios() []Scenario {
	return []Scenario{
		{"kernel-cxl-doe-cap", "run", kernelCXLDOECap},
		{"scan-bound", "run", scanBound},
		{"kernel-doe-discovery", "run", kernelDOEDiscovery},
		{"kernel-doe-cdat", "run", kernelDOECDAT},
		{"scan-unbound", "run", scanUnbound},
		{"doe-cdat", "run", doeCDAT},
		{"kernel-iommu-groups", "run", kernelIOMMUGroups},
		{"kernel-vfio-bind", "run", kernelVFIOBind},
		{"check-confidential-deny", "run", checkConfidentialDeny},
		{"check-allow-unattested", "run", checkAllowUnattested},
		{"bind-release", "run", bindRelease},
		{"bind-group-denied", "run", bindGroupDenied},
		{"kernel-tpm", "run", kernelTPM},
		{"log-verify", "run", logVerify},
		{"bpf-audit", "run", bpfAudit},
		{"go-test-tpm-device", "run", goTest("tpm.test", "^TestDeviceTPMRM0$")},
		{"go-test-audit", "run", goTest("audit.test", "^(TestLoadAndGuard|TestSysfsReadProducesOneEvent)$")},
		{"go-test-pci-realsys", "run", goTest("pci.test", "^TestRealSysfs")},
		{"kernel-lockdown", "lockdown", kernelLockdown},
		{"scan-lockdown", "lockdown", scanLockdown},
		{"check-lockdown", "lockdown", checkLockdown},
	}
}

// Placeholders until the commands land (each returns the SKIP of the first
// missing command; replaced by real checks as the commands arrive on main).
func checkConfidentialDeny(ctx context.Context, h *Harness) Result {
	return h.pending(ctx, "check")
}
func checkAllowUnattested(ctx context.Context, h *Harness) Result { return h.pending(ctx, "check") }
func bindRelease(ctx context.Context, h *Harness) Result {
	return h.pending(ctx, "bind", "release")
}
func bindGroupDenied(ctx context.Context, h *Harness) Result { return h.pending(ctx, "bind") }
func logVerify(ctx context.Context, h *Harness) Result {
	return h.pending(ctx, "check", "log verify")
}
func checkLockdown(ctx context.Context, h *Harness) Result { return h.pending(ctx, "check") }

// pending is the result of a scenario whose check is not written yet: the
// SKIP of the first missing command, or, once all are there, a SKIP that says
// the scenario itself is still missing.
func (h *Harness) pending(ctx context.Context, cmds ...string) Result {
	if r := h.need(ctx, cmds...); r != nil {
		return *r
	}
	return skipf("not yet implemented: test/vm scenario for vfio-gate %s", strings.Join(cmds, ", "))
}
