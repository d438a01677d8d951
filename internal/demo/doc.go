// Package demo is `vfio-gate demo`'s world: a temporary sysfs tree with
// three software PCIe functions (package emu), a policy that pins the good
// one's firmware, the expected outcome of each, and the libvirt part that
// starts two confidential domains through the qemu hook against the
// daemon's backend.
package demo
