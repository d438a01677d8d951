// Package doe implements the PCIe Data Object Exchange (DOE) mailbox
// (PCIe r6.0 §6.30, capability §7.9.24; register facts in SPEC-FACTS §1):
// discovery, one-object-at-a-time exchanges with busy/error/abort/timeout
// handling and adaptive polling, over a pci.ConfigSpace.
//
// The device behind the mailbox is untrusted: every header, length and
// status bit it returns is checked, and a malformed object ends the exchange
// with a *ProtocolError after the mailbox has been aborted.
//
// The package also holds the device side: Model, a register-level DOE
// mailbox that serves objects to a Handler (with fault injection); tests put
// it in a 4 KiB config space with internal/testutil/doetest.
// Sub-package socket speaks the spdm-socket protocol of QEMU and DMTF
// spdm-emu (client and server).
//
// Goroutine safety: a *Mailbox serialises its exchanges with a mutex and
// may be shared; a *Model is safe for concurrent use.
// The mailbox mutex is per process: cross-process exclusion (the lock file
// under /run/vfio-gate) is the caller's job (package pci).
package doe
