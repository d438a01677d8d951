// Package doctor checks that a host is ready for vfio-gate: IOMMU, vfio-pci,
// lockdown, TPM banks, policy and state-directory permissions, the libvirt
// hook, the daemon and the audit BPF programs. Each check is one line of a
// Report (ok, warn or fail, with what to do); none stops the others.
package doctor
