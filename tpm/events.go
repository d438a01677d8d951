package tpm

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf16"

	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// EventType is a TCG PC Client event type (TCG PC Client Platform Firmware
// Profile, event types table; SPDM types as defined by EDK2 UefiTcgPlatform.h
// and TcgSpdm.h).
type EventType uint32

// Event types vfio-gate writes.
const (
	EvNoAction                EventType = 0x00000003
	EvEFISPDMFirmwareBlob     EventType = 0x800000E1
	EvEFISPDMFirmwareConfig   EventType = 0x800000E2
	EvEFISPDMDevicePolicy     EventType = 0x800000E3
	EvEFISPDMDeviceAuthority  EventType = 0x800000E4
	evEFIEventBase            EventType = 0x80000000
	evEFIVariableAuthority    EventType = 0x800000E0
	evEFIPlatformFirmwareBlob EventType = 0x80000008
)

func (t EventType) String() string {
	switch t {
	case EvNoAction:
		return "EV_NO_ACTION"
	case EvEFISPDMFirmwareBlob:
		return "EV_EFI_SPDM_FIRMWARE_BLOB"
	case EvEFISPDMFirmwareConfig:
		return "EV_EFI_SPDM_FIRMWARE_CONFIG"
	case EvEFISPDMDevicePolicy:
		return "EV_EFI_SPDM_DEVICE_POLICY"
	case EvEFISPDMDeviceAuthority:
		return "EV_EFI_SPDM_DEVICE_AUTHORITY"
	case evEFIVariableAuthority:
		return "EV_EFI_VARIABLE_AUTHORITY"
	case evEFIPlatformFirmwareBlob:
		return "EV_EFI_PLATFORM_FIRMWARE_BLOB"
	}
	return fmt.Sprintf("0x%08x", uint32(t))
}

// CEL content types (TCG Canonical Event Log Format 1.0 §5: "pcclient_std";
// "vfio_gate" is ours, as systemd uses "systemd").
const (
	ContentPCClient = "pcclient_std"
	ContentVFIOGate = "vfio_gate"
)

// vfio_gate event kinds.
const (
	KindVerdict  = "verdict"
	KindRelease  = "release"
	KindTDISP    = "tdisp-state"
	KindBaseline = "baseline" // not extended: PCR values at the start of a boot or after a torn tail
)

// Event is one thing to measure: its data bytes are hashed per bank, the
// hashes extended, and the bytes logged.
type Event struct {
	ContentType string    // ContentPCClient or ContentVFIOGate
	Type        EventType // for ContentPCClient
	Kind        string    // for ContentVFIOGate: Kind*
	Data        []byte
}

// Decision is what a gate decided about one function, as the TPM log records
// it. It mirrors gate's decision without importing gate.
type Decision struct {
	BDF      string
	VendorID uint16
	DeviceID uint16
	DSN      *uint64
	Rule     string // policy rule that matched, "" if none
	Allow    bool
	Mode     string   // "enforce", "audit", ...
	Reasons  []string // reason codes
	// EvidenceDigest is the digest of the evidence JSON the decision was made on.
	EvidenceDigest []byte
	Confidential   bool
	Time           time.Time // zero: omitted
}

// VerdictData is the event data (compact JSON) of a verdict event.
type VerdictData struct {
	Time           *time.Time   `json:"time,omitempty"`
	BDF            string       `json:"bdf"`
	VendorID       jsonhex.U16  `json:"vendor_id"`
	DeviceID       jsonhex.U16  `json:"device_id"`
	DSN            *jsonhex.U64 `json:"dsn,omitempty"`
	Rule           string       `json:"rule"`
	Verdict        string       `json:"verdict"` // "allow" or "deny"
	Mode           string       `json:"mode"`
	Reasons        []string     `json:"reasons"`
	EvidenceDigest HexBytes     `json:"evidence_digest"`
	Confidential   bool         `json:"confidential"`
}

// Release is a device given back (domain stopped).
type Release struct {
	BDF      string       `json:"bdf"`
	VendorID jsonhex.U16  `json:"vendor_id"`
	DeviceID jsonhex.U16  `json:"device_id"`
	DSN      *jsonhex.U64 `json:"dsn,omitempty"`
	Domain   string       `json:"domain,omitempty"`
	Reason   string       `json:"reason,omitempty"`
	Time     time.Time    `json:"time,omitzero"`
}

// TDISPState is a TDISP state change of one TDI.
type TDISPState struct {
	BDF    string    `json:"bdf"`
	From   string    `json:"from"` // CONFIG_UNLOCKED, CONFIG_LOCKED, RUN, ERROR
	To     string    `json:"to"`
	Reason string    `json:"reason,omitempty"`
	Time   time.Time `json:"time,omitzero"`
}

// BaselineData is the data of a baseline record: PCR values the replay that
// follows starts from.
type BaselineData struct {
	ResetCount   uint32              `json:"reset_count"`
	RestartCount uint32              `json:"restart_count,omitempty"`
	PCRs         map[string]HexBytes `json:"pcrs"`
	Reason       string              `json:"reason"` // "boot", "resync", "segment"
	Note         string              `json:"note,omitempty"`
	Time         time.Time           `json:"time,omitzero"`
}

func vfioEvent(kind string, v any) Event {
	b, err := json.Marshal(v)
	if err != nil {
		// Only plain data types are marshalled here.
		panic("tpm: marshal " + kind + ": " + err.Error())
	}
	return Event{ContentType: ContentVFIOGate, Kind: kind, Data: b}
}

// VerdictEvent is the verdict event of d (also on deny).
func VerdictEvent(d Decision) Event {
	v := VerdictData{BDF: d.BDF, VendorID: jsonhex.U16(d.VendorID), DeviceID: jsonhex.U16(d.DeviceID), DSN: (*jsonhex.U64)(d.DSN), Rule: d.Rule,
		Verdict: "deny", Mode: d.Mode, Reasons: d.Reasons, EvidenceDigest: d.EvidenceDigest, Confidential: d.Confidential}
	if d.Allow {
		v.Verdict = "allow"
	}
	if v.Reasons == nil {
		v.Reasons = []string{}
	}
	if !d.Time.IsZero() {
		t := d.Time.UTC()
		v.Time = &t
	}
	return vfioEvent(KindVerdict, v)
}

// ReleaseEvent is the event of a release.
func ReleaseEvent(r Release) Event {
	if !r.Time.IsZero() {
		r.Time = r.Time.UTC()
	}
	return vfioEvent(KindRelease, r)
}

// TDISPStateEvent is the event of a TDISP state change.
func TDISPStateEvent(s TDISPState) Event {
	if !s.Time.IsZero() {
		s.Time = s.Time.UTC()
	}
	return vfioEvent(KindTDISP, s)
}

// TCG_DEVICE_SECURITY_EVENT_DATA2 constants (TCG PC Client Platform Firmware
// Profile, device security events; layout as in EDK2 UefiTcgPlatform.h).
const (
	sec2Signature      = "SPDM Device Sec2"
	sec2Version        = 2
	sec2DeviceTypePCI  = 1
	sec2SubMeasurement = 0 // SPDM measurement block sub header
	sec2HeaderLen      = 16 + 2 + 1 + 1 + 4 + 4 + 4 + 4 + 8
	sec2SubHeaderLen   = 2 + 1 + 1 + 4
	pciContextLen      = 16
)

// AuthState values of the Sec2 header.
const (
	AuthStateSuccess     uint8 = 0
	AuthStateNoAuth      uint8 = 1
	AuthStateNoBinding   uint8 = 2
	AuthStateFailNoSig   uint8 = 3
	AuthStateFailInvalid uint8 = 4
	AuthStateNoSPDM      uint8 = 0xFF
)

// DMTF measurement value types (DSP0274 1.3 Table "DMTFSpecMeasurementValueType").
const (
	dmtfImmutableROM     = 0
	dmtfMutableFirmware  = 1
	dmtfHardwareConfig   = 2
	dmtfFirmwareConfig   = 3
	dmtfManifest         = 4
	dmtfDeviceMode       = 5
	dmtfFirmwareVersion  = 6
	dmtfFirmwareSVN      = 7
	dmtfHashExtend       = 8
	maxMeasurementValLen = 0xFFFF - 3
)

// SPDMEventType maps a measurement block to the PC Client type EDK2 uses:
// firmware (ROM, mutable firmware, version, SVN, hash-extend) →
// FIRMWARE_BLOB; everything else (configuration, device mode, manifest,
// unknown, non-DMTF) → FIRMWARE_CONFIG. spec is the
// MeasurementSpecification byte, dmtfType the DMTFSpecMeasurementValueType.
func SPDMEventType(spec, dmtfType uint8) EventType {
	if spec&1 != 0 {
		switch dmtfType & 0x7F {
		case dmtfImmutableROM, dmtfMutableFirmware, dmtfFirmwareVersion, dmtfFirmwareSVN, dmtfHashExtend:
			return EvEFISPDMFirmwareBlob
		}
	}
	return EvEFISPDMFirmwareConfig
}

// measurementRecord encodes one SPDM measurement block (DSP0274
// "Measurement block format"): Index, MeasurementSpecification,
// MeasurementSize u16, then for DMTF blocks Type u8, Size u16, Value.
func measurementRecord(e *SPDMEvent) ([]byte, error) {
	b := wire.NewBuilder(nil)
	b.AddU8(e.Index).AddU8(e.Spec)
	if e.Spec&1 != 0 {
		if len(e.Value) > maxMeasurementValLen {
			return nil, fmt.Errorf("tpm: measurement block %d: value of %d bytes too large", e.Index, len(e.Value))
		}
		t := e.DMTFType & 0x7F
		if e.Raw {
			t |= 0x80
		}
		b.AddU16(uint16(3 + len(e.Value))).AddU8(t).AddU16(uint16(len(e.Value)))
	} else {
		if len(e.Value) > 0xFFFF {
			return nil, fmt.Errorf("tpm: measurement block %d: value of %d bytes too large", e.Index, len(e.Value))
		}
		b.AddU16(uint16(len(e.Value)))
	}
	b.AddBytes(e.Value)
	return b.Bytes(), nil
}

func pciContext(e *SPDMEvent) []byte {
	b := wire.NewBuilder(nil)
	b.AddU16(0).AddU16(pciContextLen).AddU16(uint16(e.VendorID)).AddU16(uint16(e.DeviceID)).AddU8(uint8(e.Revision))
	// ClassCode[3] in config-space order: programming interface, sub-class, base class.
	b.AddU8(uint8(e.Class)).AddU8(uint8(e.Class >> 8)).AddU8(uint8(e.Class >> 16))
	b.AddU16(uint16(e.SubsystemVendor)).AddU16(uint16(e.Subsystem))
	return b.Bytes()
}

// EncodeSPDMEvent builds the EV_EFI_SPDM_FIRMWARE_BLOB/_CONFIG event of one
// measurement block as TCG_DEVICE_SECURITY_EVENT_DATA2, laid out as EDK2
// does: HEADER2, DevicePathLength u64 and the device path (empty from gate:
// the BDF is in the verdict), SUB_HEADER_SPDM_MEASUREMENT_BLOCK, the
// measurement block, PCI context. DeviceType must be PCI (1).
// DecodeSPDMEvent reverses it.
func EncodeSPDMEvent(e *SPDMEvent) (Event, error) {
	if e.DeviceType != sec2DeviceTypePCI {
		return Event{}, fmt.Errorf("tpm: SPDM event: device type %d, only PCI (1) is encoded", e.DeviceType)
	}
	if len(e.DevicePath) > maxDevicePath {
		return Event{}, fmt.Errorf("tpm: SPDM event: device path of %d bytes exceeds %d", len(e.DevicePath), maxDevicePath)
	}
	rec, err := measurementRecord(e)
	if err != nil {
		return Event{}, err
	}
	subLen := sec2SubHeaderLen + len(rec)
	total := sec2HeaderLen + 8 + len(e.DevicePath) + subLen + pciContextLen
	b := wire.NewBuilder(make([]byte, 0, total))
	b.AddBytes([]byte(sec2Signature)).AddU16(sec2Version).AddU8(e.AuthState).AddU8(0)
	b.AddU32(uint32(total)).AddU32(sec2DeviceTypePCI).AddU32(sec2SubMeasurement).AddU32(uint32(subLen)).AddU64(uint64(e.SubHeaderUID))
	b.AddU64(uint64(len(e.DevicePath))).AddBytes(e.DevicePath)
	b.AddU16(e.SPDMVersion).AddU8(1).AddU8(0).AddU32(e.MeasurementHash)
	b.AddBytes(rec)
	b.AddBytes(pciContext(e))
	return Event{ContentType: ContentPCClient, Type: SPDMEventType(e.Spec, e.DMTFType), Data: b.Bytes()}, nil
}

// SPDMEvent is a decoded TCG_DEVICE_SECURITY_EVENT_DATA2 with one SPDM
// measurement block and a PCI context.
type SPDMEvent struct {
	AuthState       uint8       `json:"auth_state"`
	DeviceType      uint32      `json:"device_type"`
	SubHeaderUID    jsonhex.U64 `json:"sub_header_uid"` // a string: 64 bits exceed a JSON number
	DevicePath      HexBytes    `json:"device_path,omitempty"`
	SPDMVersion     uint16      `json:"spdm_version"`
	MeasurementHash uint32      `json:"measurement_hash_algo"`
	Index           uint8       `json:"index"`
	Spec            uint8       `json:"measurement_specification"`
	DMTFType        uint8       `json:"dmtf_type"`
	Raw             bool        `json:"raw"`
	Value           HexBytes    `json:"value"`
	VendorID        jsonhex.U16 `json:"vendor_id"`
	DeviceID        jsonhex.U16 `json:"device_id"`
	Revision        jsonhex.U8  `json:"revision"`
	Class           jsonhex.U24 `json:"class"`
	SubsystemVendor jsonhex.U16 `json:"subsystem_vendor_id"`
	Subsystem       jsonhex.U16 `json:"subsystem_id"`
}

// maxDevicePath bounds DevicePathLength in a decoded event.
const maxDevicePath = 4096

// DecodeSPDMEvent decodes the event data of an EV_EFI_SPDM_FIRMWARE_BLOB or
// _CONFIG event in the Sec2 layout with one measurement block and a PCI
// context. Every length is checked against the bytes present.
func DecodeSPDMEvent(data []byte) (*SPDMEvent, error) {
	s := wire.String(data)
	fail := func(field string) (*SPDMEvent, error) {
		return nil, fmt.Errorf("tpm: SPDM Device Sec2 event: bad %s at offset %d", field, len(data)-s.Len())
	}
	var sig []byte
	var ver uint16
	var rsv uint8
	var length, subType, subLen uint32
	e := &SPDMEvent{}
	if !s.ReadBytes(&sig, 16) || string(sig) != sec2Signature {
		return fail("Signature")
	}
	if !s.ReadU16(&ver) || ver != sec2Version {
		return fail("Version")
	}
	if !s.ReadU8(&e.AuthState) || !s.ReadU8(&rsv) {
		return fail("AuthState")
	}
	if !s.ReadU32(&length) || int64(length) != int64(len(data)) {
		return fail("Length")
	}
	if !s.ReadU32(&e.DeviceType) || e.DeviceType != sec2DeviceTypePCI {
		return fail("DeviceType")
	}
	if !s.ReadU32(&subType) || subType != sec2SubMeasurement {
		return fail("SubHeaderType")
	}
	if !s.ReadU32(&subLen) || !s.ReadU64((*uint64)(&e.SubHeaderUID)) {
		return fail("SubHeaderLength")
	}
	var dpLen uint64
	if !s.ReadU64(&dpLen) || dpLen > maxDevicePath {
		return fail("DevicePathLength")
	}
	var dp []byte
	if !s.ReadBytes(&dp, int(dpLen)) {
		return fail("DevicePath")
	}
	if dpLen > 0 {
		e.DevicePath = dp
	}
	var sub []byte
	if int64(subLen) > int64(s.Len()) || subLen < sec2SubHeaderLen || !s.ReadBytes(&sub, int(subLen)) {
		return fail("SubHeaderLength")
	}
	ss := wire.String(sub)
	var count, rsv2 uint8
	if !ss.ReadU16(&e.SPDMVersion) || !ss.ReadU8(&count) || count != 1 || !ss.ReadU8(&rsv2) || !ss.ReadU32(&e.MeasurementHash) {
		return fail("SpdmMeasurementBlockCount")
	}
	var msize uint16
	if !ss.ReadU8(&e.Index) || !ss.ReadU8(&e.Spec) || !ss.ReadU16(&msize) || int(msize) != ss.Len() {
		return fail("MeasurementSize")
	}
	if e.Spec&1 != 0 {
		var t uint8
		var vlen uint16
		if !ss.ReadU8(&t) || !ss.ReadU16(&vlen) || int(vlen) != ss.Len() {
			return fail("DMTFSpecMeasurementValueSize")
		}
		e.DMTFType, e.Raw = t&0x7F, t&0x80 != 0
	}
	e.Value = append(HexBytes{}, ss...)
	var cver, clen uint16
	var cc [3]uint8
	if !s.ReadU16(&cver) || !s.ReadU16(&clen) || clen != pciContextLen ||
		!s.ReadU16((*uint16)(&e.VendorID)) || !s.ReadU16((*uint16)(&e.DeviceID)) || !s.ReadU8((*uint8)(&e.Revision)) ||
		!s.ReadU8(&cc[0]) || !s.ReadU8(&cc[1]) || !s.ReadU8(&cc[2]) ||
		!s.ReadU16((*uint16)(&e.SubsystemVendor)) || !s.ReadU16((*uint16)(&e.Subsystem)) || !s.Empty() {
		return fail("PciContext")
	}
	e.Class = jsonhex.U24(uint32(cc[0]) | uint32(cc[1])<<8 | uint32(cc[2])<<16)
	return e, nil
}

// Device security database GUID EDK2 uses for "devdb"
// (EDKII_DEVICE_SIGNATURE_DATABASE_GUID, b9c2b4f4-bf5f-462d-8adf-c5c70ac35dad).
var devdbGUID = guid(0xb9c2b4f4, 0xbf5f, 0x462d, [8]byte{0x8a, 0xdf, 0xc5, 0xc7, 0x0a, 0xc3, 0x5d, 0xad})

// vfioGateOwnerGUID is the EFI_SIGNATURE_DATA owner of authority events
// written by vfio-gate (2a0f6d5e-8c1b-4b57-9f62-7666696f6761, chosen for us).
var vfioGateOwnerGUID = guid(0x2a0f6d5e, 0x8c1b, 0x4b57, [8]byte{0x9f, 0x62, 0x76, 0x66, 0x69, 0x6f, 0x67, 0x61})

// guid encodes an EFI_GUID (Data1-3 little-endian, Data4 bytes).
func guid(d1 uint32, d2, d3 uint16, d4 [8]byte) []byte {
	b := wire.NewBuilder(nil)
	b.AddU32(d1).AddU16(d2).AddU16(d3).AddBytes(d4[:])
	return b.Bytes()
}

const devdbName = "devdb"

// NewAuthorityEvent is EV_EFI_SPDM_DEVICE_AUTHORITY as EDK2 lays it out: a
// UEFI_VARIABLE_DATA for "devdb" whose data is one EFI_SIGNATURE_DATA. EDK2
// puts the anchor's DER there; vfio-gate puts the SHA-256 of the trust
// anchor's DER (32 bytes) as the SignatureData.
func NewAuthorityEvent(anchorSHA256 []byte) (Event, error) {
	if len(anchorSHA256) != 32 {
		return Event{}, fmt.Errorf("tpm: authority event: anchor digest of %d bytes, want 32", len(anchorSHA256))
	}
	name := utf16.Encode([]rune(devdbName))
	sigData := append(append([]byte{}, vfioGateOwnerGUID...), anchorSHA256...)
	b := wire.NewBuilder(nil)
	b.AddBytes(devdbGUID).AddU64(uint64(len(name))).AddU64(uint64(len(sigData)))
	for _, u := range name {
		b.AddU16(u)
	}
	b.AddBytes(sigData)
	return Event{ContentType: ContentPCClient, Type: EvEFISPDMDeviceAuthority, Data: b.Bytes()}, nil
}

// AuthorityEvent is a decoded authority event.
type AuthorityEvent struct {
	VariableGUID  string   `json:"variable_guid"`
	Name          string   `json:"name"`
	Owner         string   `json:"owner_guid"`
	SignatureData HexBytes `json:"signature_data"` // for vfio-gate: SHA-256 of the anchor DER
}

// DecodeAuthorityEvent decodes a UEFI_VARIABLE_DATA holding one EFI_SIGNATURE_DATA.
func DecodeAuthorityEvent(data []byte) (*AuthorityEvent, error) {
	s := wire.String(data)
	var g, owner, rest []byte
	var nlen, dlen uint64
	if !s.ReadBytes(&g, 16) || !s.ReadU64(&nlen) || !s.ReadU64(&dlen) || nlen > 256 ||
		dlen < 16 || dlen > uint64(s.Len()) {
		return nil, fmt.Errorf("tpm: device authority event: bad UEFI_VARIABLE_DATA header")
	}
	name := make([]uint16, nlen)
	for i := range name {
		if !s.ReadU16(&name[i]) {
			return nil, fmt.Errorf("tpm: device authority event: truncated name")
		}
	}
	if uint64(s.Len()) != dlen || !s.ReadBytes(&owner, 16) || !s.ReadBytes(&rest, s.Len()) {
		return nil, fmt.Errorf("tpm: device authority event: VariableDataLength %d does not match", dlen)
	}
	return &AuthorityEvent{VariableGUID: guidString(g), Name: string(utf16.Decode(name)), Owner: guidString(owner),
		SignatureData: append(HexBytes{}, rest...)}, nil
}

func guidString(b []byte) string {
	s := wire.String(b)
	var d1 uint32
	var d2, d3 uint16
	s.ReadU32(&d1)
	s.ReadU16(&d2)
	s.ReadU16(&d3)
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x", d1, d2, d3, []byte(s[:2]), []byte(s[2:]))
}
