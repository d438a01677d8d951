// Package evstore keeps the evidence bundle of every decision under the
// state directory, named by its digest (the evidence_digest of the verdict
// event in the TPM log), so that a decision can be re-verified later without
// the device: vfio-gate evidence show|verify|export.
//
// A bundle file is one JSON object:
//
//	{"schema": "vfio-gate/evidence-bundle/v1", "digest": HEX,
//	 "decision": {...}, "evidence": {...}}
//
// where "evidence" holds, byte for byte, the canonical evidence JSON whose
// SHA-256 is the digest (transcripts, nonces, signatures, chain buffer,
// measurements, TDISP report). Get checks that hash before returning.
package evstore
