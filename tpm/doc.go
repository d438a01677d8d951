// Package tpm records vfio-gate decisions in a TPM: it extends event digests
// into one PCR in every active bank (SHA-256 and SHA-384 at least) and appends
// each event to a TCG Canonical Event Log in its JSON form (CEL-JSON, one
// record per line), kept per TPM boot in segments (segments.go), then
// replays that log against the PCRs. It also quotes the PCR with an
// attestation key it creates once (quote.go) and writes a boot's log as a
// TCG2 crypto-agile binary event log (tcg2.go), for verifiers using
// tpm2-tools or go-eventlog (docs/evidence.md).
//
// Device evidence is logged with the TCG PC Client event types EDK2 uses
// pre-boot for SPDM devices (EV_EFI_SPDM_FIRMWARE_BLOB 0x800000E1,
// EV_EFI_SPDM_FIRMWARE_CONFIG 0x800000E2, EV_EFI_SPDM_DEVICE_AUTHORITY
// 0x800000E4: TCG PC Client Platform Firmware Profile event types; EDK2
// UefiTcgPlatform.h and TcgSpdm.h) and the
// TCG_DEVICE_SECURITY_EVENT_DATA2 ("SPDM Device Sec2") layout. Verdicts,
// releases and TDISP state changes use the content type "vfio_gate". The
// package only encodes events (EncodeSPDMEvent, NewAuthorityEvent,
// VerdictEvent, ...); which evidence becomes which event is gate's
// decision (gate.EventsFor). tpm imports nothing of attest or spdm.
//
// Backends (Open): /dev/tpmrm0 with plain blocking syscalls, swtpm over TCP
// (MS-simulator framing), a unix stream socket, and go-tpm-tools' in-process
// simulator ("sim").
//
// A Recorder is safe for concurrent use within one process and serialises
// with other processes by an exclusive flock on the log directory's lock
// file. Verify and ReadBoot only read.
package tpm
