// Package pci models PCI functions as Linux exposes them in sysfs: a
// System over one sysfs tree (production "/sys", tests a fixture directory
// from pci/sysfstest) whose every access is confined by os.Root (Root), and
// a Function snapshot per address (IDs, class, driver, IOMMU group, DSN).
//
// It also owns config-space access (ConfigSpace, aligned 1-, 2- and 4-byte
// reads and writes; Function.OpenConfig gives a typed *ReadOnlyError when the file
// only opens read-only), the standard and extended capability walks (a
// hostile list ends in ErrCapLoop), the per-function lock file
// (LockFunction, under DefaultLockDir) and the rule of who may drive a DOE
// mailbox from user space (MayDriveDOE: no driver or vfio-pci, tsm/connect
// empty, lockdown "none", root; a refusal is a *BlockedError).
//
// ParseBDF accepts only the canonical "dddd:bb:dd.f" form, so no path is
// built from an address that was not checked. A System is safe for
// concurrent use; a Function is a snapshot and goes stale.
package pci
