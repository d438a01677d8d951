//go:build linux

package main

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
		{"kernel-lockdown", "lockdown", kernelLockdown},
		{"scan-lockdown", "lockdown", scanLockdown},
		{"check-lockdown", "lockdown", checkLockdown},
	}
}
