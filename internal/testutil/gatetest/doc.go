// Package gatetest holds the test fixture shared by the gate, daemon and CLI
// tests: a sysfstest tree of functions whose config space is served in
// memory (software devices from emu, or a plain header), the TPM simulator
// with a recorder, a fake kernel that plays the sysfs side of vfio binding,
// and the reference measurements of emu's good device in policy YAML.
//
// It is imported only from _test.go files.
package gatetest
