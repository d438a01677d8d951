// Package sysfstest builds sysfs-shaped trees of PCI functions in a
// directory: real files, relative symlinks and the kernel's exact formats.
// Tests use it with t.TempDir(); the demo uses it for its software devices.
package sysfstest
