// Package emu is the software device: a PCIe function with a DOE mailbox
// that answers CMA/SPDM as a real device would, with its own test PKI
// (root → intermediate → leaf carrying the CMA subject-alt-name), DMTF
// measurement blocks, and fault injection (bad signatures, wrong roots,
// expired leaves, truncated or oversize messages, Busy storms, …).
//
// It serves tests, the demo and `vfio-gate emulate`. Nothing in it is
// trusted by vfio-gate: it is the adversary the requester is tested against.
package emu
