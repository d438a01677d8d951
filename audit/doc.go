// Package audit watches config-space accesses to guarded PCI functions with
// eBPF (kprobes on pci_user_{read,write}_config_*) and reports who touched
// what, by which path (sysfs, procfs, VFIO).
package audit
