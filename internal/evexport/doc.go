// Package evexport writes an evidence export: the current boot's event log
// as a TCG2 binary log, a TPM quote over the PCR, the attestation key, the
// EK certificate and the evidence bundle of every verdict, with a manifest
// (docs/evidence.md). A verifier checks it with tpm2-tools alone.
package evexport
