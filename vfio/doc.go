// Package vfio binds whole IOMMU groups of PCI functions to vfio-pci through
// driver_override, unbind and drivers_probe (never new_id), waits for
// /dev/vfio/N, and gives functions back to their original drivers.
//
// Work is split into Plan (reads sysfs, decides, pure and unit-tested) and
// Apply (writes sysfs; on failure part-way it undoes what it did). The IOMMU
// group rule: every member of a group must be in the set being bound, or be
// exempt (bridges and ports the policy lists); otherwise nothing is bound.
//
// Functions are safe for concurrent use on different groups; callers
// serialise work on one function (gate holds a per-function lock). Kernel
// behaviour: Documentation/ABI/testing/sysfs-bus-pci (driver_override,
// drivers_probe, bind, unbind) and Documentation/driver-api/vfio.rst.
package vfio
