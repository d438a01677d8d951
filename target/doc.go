// Package target opens one device however it is reached — a PCI function's
// DOE mailboxes through sysfs, or an spdm-socket peer — and hands back its
// CMA and secured-CMA transports and a closer. It is the only place that
// takes the per-function lock for a mailbox, applies "who may touch the
// mailbox" (pci.System.MayDriveDOE), opens config space for writing, dials a
// socket or builds a DOE transport.
//
// The kernel PCI TSM (tdisp.TSM) is not a Target: the kernel drives SPDM
// itself and exposes no transport, certificate or measurement to user space
// (connect, disconnect and an authenticated flag only), so there is nothing
// to attest through it. A function whose tsm/connect names a TSM is refused
// by MayDriveDOE (mailbox-owned) with a reason that names the TSM.
package target
