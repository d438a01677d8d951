// Package libvirt is the libvirt qemu hook: domain XML in, PCI functions out,
// a gate decision from the vfio-gate daemon, and the exit status and stderr
// libvirt expects. It never calls back into libvirtd (that deadlocks).
package libvirt
