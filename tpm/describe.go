package tpm

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
)

// DecodedEvent is a record decoded for people and JSON consumers (`vfio-gate
// log show`). Event holds the decoded event data: *SPDMEvent,
// *AuthorityEvent, *VerdictData, *Release, *TDISPState or *BaselineData.
type DecodedEvent struct {
	RecNum      uint64   `json:"recnum"`
	PCR         int      `json:"pcr"`
	ContentType string   `json:"content_type"`
	EventType   string   `json:"event_type"`
	Extended    bool     `json:"extended"`
	Digests     []Digest `json:"digests"`
	Summary     string   `json:"summary"`
	Event       any      `json:"event,omitempty"`
	DecodeError string   `json:"decode_error,omitempty"`
}

var dmtfTypeNames = map[uint8]string{
	dmtfImmutableROM: "immutable-rom", dmtfMutableFirmware: "mutable-firmware", dmtfHardwareConfig: "hardware-config",
	dmtfFirmwareConfig: "firmware-config", dmtfManifest: "manifest", dmtfDeviceMode: "device-mode",
	dmtfFirmwareVersion: "firmware-version", dmtfFirmwareSVN: "firmware-svn", dmtfHashExtend: "hash-extend",
}

var authStateNames = map[uint8]string{
	AuthStateSuccess: "success", AuthStateNoAuth: "no-auth", AuthStateNoBinding: "no-binding",
	AuthStateFailNoSig: "fail-no-sig", AuthStateFailInvalid: "fail-invalid", AuthStateNoSPDM: "no-spdm",
}

func short(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + fmt.Sprintf("… (%d bytes)", len(b))
	}
	return hex.EncodeToString(b)
}

// Describe decodes one record. It never fails: what does not decode is
// reported in DecodeError.
func Describe(r *Record) DecodedEvent {
	d := DecodedEvent{RecNum: r.RecNum, PCR: r.PCR, ContentType: r.Event.ContentType, Digests: r.Digests,
		Extended: len(r.Digests) > 0}
	if d.Digests == nil {
		d.Digests = []Digest{}
	}
	var err error
	switch r.Event.ContentType {
	case ContentPCClient:
		d.EventType = r.Event.Type.String()
		switch r.Event.Type {
		case EvEFISPDMFirmwareBlob, EvEFISPDMFirmwareConfig:
			var e *SPDMEvent
			if e, err = DecodeSPDMEvent(r.Event.Data); err == nil {
				tn := dmtfTypeNames[e.DMTFType]
				if tn == "" {
					tn = fmt.Sprintf("type-%d", e.DMTFType)
				}
				if e.Spec&1 == 0 {
					tn = "non-dmtf"
				}
				if e.Raw {
					tn += " (raw)"
				}
				d.Event = e
				d.Summary = fmt.Sprintf("%04x:%04x block %d %s auth=%s value %s", e.VendorID, e.DeviceID, e.Index, tn,
					authStateNames[e.AuthState], short(e.Value))
			}
		case EvEFISPDMDeviceAuthority:
			var e *AuthorityEvent
			if e, err = DecodeAuthorityEvent(r.Event.Data); err == nil {
				d.Event = e
				d.Summary = "trust anchor sha256 " + hex.EncodeToString(e.SignatureData)
			}
		default:
			d.Summary = fmt.Sprintf("%d bytes of event data", len(r.Event.Data))
		}
	case ContentVFIOGate:
		d.EventType = r.Event.Kind
		switch r.Event.Kind {
		case KindVerdict:
			var v VerdictData
			if err = json.Unmarshal(r.Event.Data, &v); err == nil {
				d.Event = &v
				d.Summary = fmt.Sprintf("%s %04x:%04x %s", v.BDF, v.VendorID, v.DeviceID, strings.ToUpper(v.Verdict))
				if v.Rule != "" {
					d.Summary += " rule " + v.Rule
				}
				if v.Mode != "" {
					d.Summary += " (" + v.Mode + ")"
				}
				if len(v.Reasons) > 0 {
					d.Summary += " reasons " + strings.Join(v.Reasons, ",")
				}
			}
		case KindRelease:
			var v Release
			if err = json.Unmarshal(r.Event.Data, &v); err == nil {
				d.Event = &v
				d.Summary = v.BDF + " released"
				if v.Domain != "" {
					d.Summary += " from " + v.Domain
				}
				if v.Reason != "" {
					d.Summary += ": " + v.Reason
				}
			}
		case KindTDISP:
			var v TDISPState
			if err = json.Unmarshal(r.Event.Data, &v); err == nil {
				d.Event = &v
				d.Summary = fmt.Sprintf("%s TDISP %s -> %s", v.BDF, v.From, v.To)
			}
		case KindBaseline:
			var v *BaselineData
			if v, err = parseBaseline(r.Event.Data); err == nil {
				d.Event = v
				d.Summary = fmt.Sprintf("baseline (%s), TPM resetCount %d, not extended", v.Reason, v.ResetCount)
				if v.Note != "" {
					d.Summary += ": " + v.Note
				}
			}
		}
	}
	if err != nil {
		d.DecodeError = err.Error()
		d.Summary = "undecodable event data: " + err.Error()
	}
	return d
}
