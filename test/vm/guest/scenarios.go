//go:build linux

package main

import "time"

// scenarios lists every scenario in the order it runs. Order matters where a
// scenario leaves device state for the next (each says so in its comment):
// scan-bound needs cxl_pci bound, the kernel DOE scenarios unbind it.
func scenarios() []Scenario {
	return []Scenario{
		{"kernel-cxl-doe-cap", "run", kernelCXLDOECap},
		{"scan-bound", "run", scanBound},
		{"doe-bound-refused", "run", doeBoundRefused},
		{"kernel-doe-discovery", "run", kernelDOEDiscovery},
		{"kernel-doe-cdat", "run", kernelDOECDAT},
		{"scan-unbound", "run", scanUnbound},
		{"doe-cdat", "run", doeCDAT},
		{"doe-cdat-cli", "run", doeCDATCLI},
		{"kernel-iommu-groups", "run", kernelIOMMUGroups},
		{"kernel-vfio-bind", "run", kernelVFIOBind},
		{"check-confidential-deny", "run", checkConfidentialDeny},
		{"check-allow-unattested", "run", checkAllowUnattested},
		{"bind-release", "run", bindRelease},
		{"bind-group-denied", "run", bindGroupDenied},
		{"kernel-tpm", "run", kernelTPM},
		{"log-verify", "run", logVerify},
		{"bpf-audit", "run", bpfAudit},
		{"bpf-audit-vfio", "run", bpfAuditVFIO},
		{"audit-tamper", "run", auditTamper},
		{"bench-audit", "run", benchAudit},
		{"go-test-tpm-device", "run", goTest("tpm.test", "^TestDeviceTPMRM0$")},
		{"go-test-audit", "run", goTest("audit.test", "^(TestLoadAndGuard|TestSysfsReadProducesOneEvent|TestWatcherSync)$")},
		{"go-test-pci-realsys", "run", goTest("pci.test", "^TestRealSysfs")},
		// libvirt-*: a real libvirtd in the guest runs the hooks for the
		// e1000e as a managed='yes' hostdev (libvirt.go); they need it on
		// e1000e (bind-release gives it back) and share one libvirtd.
		{"libvirt-up", "run", libvirtUp},
		{"libvirt-start-denied", "run", libvirtStartDenied},
		{"libvirt-prepare-deferred", "run", libvirtPrepareDeferred},
		{"libvirt-start-decided", "run", libvirtStartDecided},
		{"libvirt-host-driver-back", "run", libvirtHostDriverBack},
		{"libvirt-release-end", "run", libvirtReleaseEnd},
		{"kernel-lockdown", "lockdown", kernelLockdown},
		{"scan-lockdown", "lockdown", scanLockdown},
		{"check-lockdown", "lockdown", checkLockdown},
	}
}

// scenarioLimits raises the deadline of scenarios that need more than the
// default: libvirt-up waits for libvirtd's QEMU capability probe, which runs
// QEMU under TCG inside the TCG guest; virsh start runs the hooks.
var scenarioLimits = map[string]time.Duration{
	"libvirt-up":               5 * time.Minute,
	"libvirt-start-denied":     3 * time.Minute,
	"libvirt-prepare-deferred": 3 * time.Minute,
	"libvirt-start-decided":    3 * time.Minute,
	"libvirt-host-driver-back": 3 * time.Minute,
	"libvirt-release-end":      3 * time.Minute,
}
