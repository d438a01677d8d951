// Package spdm implements the DMTF Security Protocol and Data Model
// (DSP0274, versions 1.0–1.3) as used by PCIe CMA (PCIe r6.x §6.31): the
// message codecs for both directions, the requester state machine (version,
// capabilities, algorithms, digests, certificates, challenge, measurements),
// certificate-chain verification and the signature rules.
//
// Message codecs are unexported. Each decoder checks every length and
// reserved field, rejects trailing bytes, caps device-supplied lengths and
// keeps the exact bytes (raw) for transcripts. Lengths come from SPDM fields
// only: the DOE transport may add 0–3 zero pad bytes, which are removed at the
// transport edge by decodePadded (the only place that tolerates them).
//
// Transcripts (message A, B, M1, L1/L2, D and a session's TH) are built in
// one place, transcript.go, by both the requester and the responder: the
// order of the messages and the multi-key rule for message D live there.
//
// A Requester is not safe for concurrent use. A ChainCache may be shared by
// many requesters (MapChainCache is safe for concurrent use).
package spdm
