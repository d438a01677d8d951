package gate

import (
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/tpm"
)

// EventsFor turns the evidence of one decision into the TPM events it is
// recorded as, in the order they are extended: one SPDM event per
// measurement block (TCG_DEVICE_SECURITY_EVENT_DATA2), one authority event
// for the trust anchor that verified the chain (when one did), then the
// verdict. A nil ev (attestation never ran) yields only the verdict. tpm only
// encodes the events; which evidence becomes which event is decided here.
func EventsFor(ev *attest.Evidence, d tpm.Decision) ([]tpm.Event, error) {
	var out []tpm.Event
	if ev != nil && ev.Version != "" {
		for _, m := range ev.Measurements {
			e, err := tpm.EncodeSPDMEvent(spdmEvent(ev, m))
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		if anchor := anchorDigest(ev); anchor != nil {
			a, err := tpm.NewAuthorityEvent(anchor)
			if err != nil {
				return nil, err
			}
			out = append(out, a)
		}
	}
	return append(out, tpm.VerdictEvent(d)), nil
}

// spdmEvent is the Sec2 event of one measurement block: auth state from
// whether the measurement signature verified, the DSN as sub-header UID, the
// negotiated version and measurement hash, the block, the PCI identity.
func spdmEvent(ev *attest.Evidence, m attest.MeasurementBlock) *tpm.SPDMEvent {
	auth := tpm.AuthStateSuccess
	if !ev.MeasurementsSignatureVerified {
		auth = tpm.AuthStateFailInvalid
	}
	var uid uint64
	if ev.Identity.DSN != nil {
		uid = *ev.Identity.DSN
	}
	id := ev.Identity
	return &tpm.SPDMEvent{AuthState: auth, DeviceType: 1, SubHeaderUID: jsonhex.U64(uid),
		SPDMVersion: spdmVersionByte(ev.Version), MeasurementHash: measurementHashAlgo(ev.Algorithms.MeasurementHash),
		Index: m.Index, Spec: m.Spec, DMTFType: m.Type & 0x7F, Raw: m.Raw, Value: tpm.HexBytes(m.Value),
		VendorID: jsonhex.U16(id.VendorID), DeviceID: jsonhex.U16(id.DeviceID), Revision: jsonhex.U8(id.Revision),
		Class: jsonhex.U24(id.Class), SubsystemVendor: jsonhex.U16(id.SubsystemVendorID), Subsystem: jsonhex.U16(id.SubsystemID)}
}

// anchorDigest is the SHA-256 of the trust anchor that verified a chain:
// the chain of the slot used for signatures is preferred, any verified chain
// otherwise; nil when none verified.
func anchorDigest(ev *attest.Evidence) []byte {
	for _, pass := range []bool{true, false} {
		for _, c := range ev.Chains {
			if !c.Verified || c.AnchorSHA256 == "" || (pass && c.Slot != ev.Bundle.Slot) {
				continue
			}
			if h, err := hex.DecodeString(c.AnchorSHA256); err == nil && len(h) == 32 {
				return h
			}
		}
	}
	return nil
}

// spdmVersionByte is the SPDM version as EDK2 stores it in the sub header:
// major<<4 | minor ("1.2" → 0x12).
func spdmVersionByte(v string) uint16 {
	var maj, min uint16
	if _, err := fmt.Sscanf(v, "%d.%d", &maj, &min); err != nil || maj > 15 || min > 15 {
		return 0
	}
	return maj<<4 | min
}

// measurementHashAlgo is the SPDM MeasurementHashAlgo bit (DSP0274 ALGORITHMS).
func measurementHashAlgo(name string) uint32 {
	switch strings.ToLower(name) {
	case "raw", "raw-bit-stream":
		return 0x01
	case "sha-256", "sha256":
		return 0x02
	case "sha-384", "sha384":
		return 0x04
	case "sha-512", "sha512":
		return 0x08
	case "sha3-256":
		return 0x10
	case "sha3-384":
		return 0x20
	case "sha3-512":
		return 0x40
	case "sm3-256", "sm3":
		return 0x80
	}
	return 0
}
