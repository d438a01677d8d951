// Package tdisp implements the TEE Device Interface Security Protocol (PCIe
// r6.1 §11, "TDISP"): the message codecs, the TDI state machine shared by the
// requester (Client) and the device side (Device), the device interface
// report parser, and the kernel PCI TSM sysfs backend (TSM) for hosts where a
// platform TSM owns SPDM.
//
// TDISP travels as SPDM VENDOR_DEFINED messages (StandardID 3 = PCI-SIG,
// VendorID 0x0001, payload byte 0 = protocol ID 1) inside a secure session.
// The package does not import the SPDM requester: it declares the one method
// it needs (Session).
package tdisp
