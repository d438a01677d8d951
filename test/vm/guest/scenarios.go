//go:build linux

package main

import (
	"strings"
	"time"
)

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
		// Before libvirt-*: their daemon extends the same PCR from its own
		// state directory. The host verifies the export (export-* results).
		{"evidence-export", "run", evidenceExport},
		{"bpf-audit", "run", bpfAudit},
		{"bpf-audit-vfio", "run", bpfAuditVFIO},
		{"audit-tamper", "run", auditTamper},
		{"bench-audit", "run", benchAudit},
		{"go-test-tpm-device", "run", goTest("tpm.test", "^TestDeviceTPMRM0$")},
		{"go-test-audit", "run", goTest("audit.test", "^(TestLoadAndGuard|TestSysfsReadProducesOneEvent|TestAutoFallsBackToKprobes|TestWatcherSync)$")},
		{"go-test-pci-realsys", "run", goTest("pci.test", "^TestRealSysfs")},
		// libvirt-*: a real libvirtd in the guest runs the hooks for the
		// e1000e as a managed='yes' hostdev (libvirt.go); they need it on
		// e1000e (bind-release gives it back) and share one libvirtd.
		{"libvirt-up", "run", libvirtUp},
		{"doctor-host", "run", doctorHost},
		{"libvirt-start-denied", "run", lvStartDenied(lvDomain)},
		{"libvirt-prepare-deferred", "run", lvPrepareDeferred(lvDomain)},
		{"libvirt-start-decided", "run", lvStartDecided(lvDomain)},
		{"libvirt-host-driver-back", "run", lvHostDriverBack(lvDomain)},
		{"libvirt-release-end", "run", lvReleaseEnd(lvDomain)},
		// Domains named like flags (issue 14.1) must be decided, not let through.
		{"libvirt-flag-names", "run", libvirtFlagNames},
		// The same for the CXL function: cxl_pci owns its DOE mailbox at
		// prepare; at start begin the daemon drives it on vfio-pci.
		{"libvirt-cxl-start-denied", "run", lvStartDenied(lvDomainCXL)},
		{"libvirt-cxl-prepare-deferred", "run", lvPrepareDeferred(lvDomainCXL)},
		{"libvirt-cxl-start-decided", "run", lvStartDecided(lvDomainCXL)},
		{"libvirt-cxl-host-driver-back", "run", lvHostDriverBack(lvDomainCXL)},
		{"libvirt-cxl-release-end", "run", lvReleaseEnd(lvDomainCXL)},
		// Pools: a hostdev pool of the e1000e is refused; a macvtap pool
		// of its netdev shows what the hooks see (libvirtpool.go).
		{"libvirt-pool-vf-only", "run", libvirtPoolVFOnly},
		{"libvirt-pool-up", "run", libvirtPoolUp},
		{"libvirt-pool-prepare-xml", "run", libvirtPoolPrepareXML},
		{"libvirt-pool-start-xml", "run", libvirtPoolStartXML},
		{"libvirt-pool-destroy", "run", libvirtPoolDestroy},
		// The allow path: the daemon restarted under an allow policy, the
		// e1000e domain really runs (QEMU with the function through VFIO),
		// then virsh destroy.
		{"libvirt-allowed-start", "run", libvirtAllowedStart},
		{"libvirt-allowed-destroy", "run", libvirtAllowedDestroy},
		// Hot-plug (hotplug.go): virsh attach-device --live calls no hook;
		// the daemon (libvirt.hotplug detach, then report) must notice.
		{"libvirt-hotplug-no-hook", "run", libvirtHotplugNoHook},
		{"libvirt-hotplug-detach", "run", libvirtHotplugDetach},
		{"libvirt-hotplug-report", "run", libvirtHotplugReport},
		{"libvirt-hotplug-replug", "run", libvirtHotplugReplug},
		{"libvirt-hotplug-pending", "run", libvirtHotplugPending},
		// The .deb's payload, not the test build, through README.md's install
		// steps (debinstall.go); last of the normal boot, and it puts back the
		// test daemon, drop-in and /etc/vfio-gate files it replaced.
		{"libvirt-deb-install", "run", libvirtDebInstall},
		// SPDM boots (spdm.go): QEMU >= 9.1 NVMe functions whose DOE
		// mailboxes are backed by vfio-gate emulate on the host, once per
		// guest kernel. spdm-kernel-doe unbinds nvme; spdm-capture-allow
		// writes the policy the later ones use.
		{"spdm-kernel-doe", "spdm", spdmKernelDOE},
		{"spdm-scan", "spdm", spdmScan},
		{"spdm-attest", "spdm", spdmAttestPlain},
		{"spdm-attest-session", "spdm", spdmAttestSession},
		{"spdm-attest-tdisp", "spdm", spdmAttestTDISP},
		{"spdm-tdisp-cycle", "spdm", spdmTDISPCycle},
		{"spdm-capture-allow", "spdm", spdmCaptureAllow},
		{"spdm-tampered", "spdm", spdmDeny("tampered", 3, 30*time.Second, "measurement-mismatch")},
		{"spdm-bad-signature", "spdm", spdmDeny("bad-signature", 2, 30*time.Second, "signature-invalid")},
		{"spdm-wrong-root", "spdm", spdmDeny("wrong-root", 2, 30*time.Second, "chain-untrusted")},
		{"spdm-busy-storm", "spdm", spdmDeny("busy-storm", 2, 45*time.Second, "protocol")},
		{"spdm-not-ready-forever", "spdm", spdmDeny("not-ready-forever", 2, 45*time.Second, "protocol")},
		{"spdm-bind-release", "spdm", spdmBindRelease},
		{"spdm-bpf-audit", "spdm", spdmAudit},
		{"spdm-log-verify", "spdm", spdmLogVerify},
		// libvirt in the SPDM boots (spdmlibvirt.go): confidential domains
		// (metadata) with the NVMe functions as managed='yes' hostdevs
		// under the captured policy plus tdisp.require_lock.
		{"spdm-libvirt-confidential-start", "spdm", spdmLibvirtConfidentialStart},
		{"spdm-libvirt-confidential-release", "spdm", spdmLibvirtConfidentialRelease},
		{"spdm-libvirt-tampered-refused", "spdm", spdmLibvirtTamperedRefused},
		{"kernel-lockdown", "lockdown", kernelLockdown},
		{"scan-lockdown", "lockdown", scanLockdown},
		{"check-lockdown", "lockdown", checkLockdown},
		{"doctor-lockdown", "lockdown", doctorLockdown},
	}
}

// scenarioLimit is the deadline of a scenario that needs more than the
// default, or 0. A libvirt-* scenario may be the first selected and then waits
// for libvirtd's QEMU capability probe (QEMU under TCG inside the TCG guest)
// before it runs virsh start and the hooks.
func scenarioLimit(name string) time.Duration {
	if strings.HasPrefix(name, "libvirt-") || strings.HasPrefix(name, "spdm-libvirt-") {
		return 5 * time.Minute
	}
	return 0
}
