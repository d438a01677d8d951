package tdisp

import (
	"fmt"

	"github.com/vfio-gate/vfio-gate/internal/wire"
	"github.com/vfio-gate/vfio-gate/pci"
)

// VENDOR_DEFINED framing for TDISP (SPEC-FACTS §2.14, §4.1).
const (
	StandardIDPCISIG uint16 = 3
	ProtocolID       uint8  = 0x01
	// Version10 is TDISP 1.0 (major<<4 | minor).
	Version10 uint8 = 0x10
	// HeaderSize is the TDISP message header after the protocol ID byte.
	HeaderSize = 16
	// NonceSize is the START_INTERFACE nonce size.
	NonceSize = 32
	// MaxPayload caps a TDISP payload we build or accept (protocol ID included).
	// spdm-emu uses 0x400; DOE allows far more, the report is read in portions.
	MaxPayload = 0x1000
	// maxPortion is the largest report portion a MaxPayload response holds:
	// protocol ID, header, PORTION_LENGTH, REMAINDER_LENGTH.
	maxPortion = MaxPayload - 1 - HeaderSize - 4
)

// VendorIDPCISIG is the PCI-SIG vendor ID as carried in VENDOR_DEFINED (LE).
var VendorIDPCISIG = []byte{0x01, 0x00}

// MessageType is the TDISP header MessageType. Requests have bit 7 set.
type MessageType uint8

const (
	MsgGetVersion          MessageType = 0x81
	MsgGetCapabilities     MessageType = 0x82
	MsgLockInterface       MessageType = 0x83
	MsgGetReport           MessageType = 0x84
	MsgGetState            MessageType = 0x85
	MsgStartInterface      MessageType = 0x86
	MsgStopInterface       MessageType = 0x87
	MsgBindP2PStream       MessageType = 0x88
	MsgUnbindP2PStream     MessageType = 0x89
	MsgSetMMIOAttribute    MessageType = 0x8A
	MsgVDMRequest          MessageType = 0x8B
	MsgVersion             MessageType = 0x01
	MsgCapabilities        MessageType = 0x02
	MsgLockInterfaceRsp    MessageType = 0x03
	MsgReport              MessageType = 0x04
	MsgState               MessageType = 0x05
	MsgStartInterfaceRsp   MessageType = 0x06
	MsgStopInterfaceRsp    MessageType = 0x07
	MsgBindP2PStreamRsp    MessageType = 0x08
	MsgUnbindP2PStreamRsp  MessageType = 0x09
	MsgSetMMIOAttributeRsp MessageType = 0x0A
	MsgVDMResponse         MessageType = 0x0B
	MsgError               MessageType = 0x7F
	msgRequestBit          MessageType = 0x80
)

var msgNames = map[MessageType]string{
	MsgGetVersion: "GET_TDISP_VERSION", MsgGetCapabilities: "GET_TDISP_CAPABILITIES",
	MsgLockInterface: "LOCK_INTERFACE_REQUEST", MsgGetReport: "GET_DEVICE_INTERFACE_REPORT",
	MsgGetState: "GET_DEVICE_INTERFACE_STATE", MsgStartInterface: "START_INTERFACE_REQUEST",
	MsgStopInterface: "STOP_INTERFACE_REQUEST", MsgBindP2PStream: "BIND_P2P_STREAM_REQUEST",
	MsgUnbindP2PStream: "UNBIND_P2P_STREAM_REQUEST", MsgSetMMIOAttribute: "SET_MMIO_ATTRIBUTE_REQUEST",
	MsgVDMRequest: "VDM_REQUEST", MsgVersion: "TDISP_VERSION", MsgCapabilities: "TDISP_CAPABILITIES",
	MsgLockInterfaceRsp: "LOCK_INTERFACE_RESPONSE", MsgReport: "DEVICE_INTERFACE_REPORT",
	MsgState: "DEVICE_INTERFACE_STATE", MsgStartInterfaceRsp: "START_INTERFACE_RESPONSE",
	MsgStopInterfaceRsp: "STOP_INTERFACE_RESPONSE", MsgBindP2PStreamRsp: "BIND_P2P_STREAM_RESPONSE",
	MsgUnbindP2PStreamRsp: "UNBIND_P2P_STREAM_RESPONSE", MsgSetMMIOAttributeRsp: "SET_MMIO_ATTRIBUTE_RESPONSE",
	MsgVDMResponse: "VDM_RESPONSE", MsgError: "TDISP_ERROR",
}

func (t MessageType) String() string {
	if n, ok := msgNames[t]; ok {
		return n
	}
	return fmt.Sprintf("TDISP(%#02x)", uint8(t))
}

// IsRequest reports whether t is a request code.
func (t MessageType) IsRequest() bool { return t&msgRequestBit != 0 }

// ResponseType is the response code that answers request t.
func (t MessageType) ResponseType() MessageType { return t &^ msgRequestBit }

// InterfaceID is INTERFACE_ID.FUNCTION_ID: [15:0] Requester ID, [23:16]
// requester segment, bit 24 segment valid. The 8 reserved bytes that follow
// it on the wire are written as zero and ignored on receipt.
type InterfaceID uint32

const segmentValid = 1 << 24

// InterfaceIDFor builds the interface ID of a PCI function. The segment bit is
// set only for a non-zero segment; segments above 0xFF do not fit.
func InterfaceIDFor(b pci.BDF) (InterfaceID, error) {
	if b.Domain > 0xff {
		return 0, fmt.Errorf("tdisp: segment %#04x of %s does not fit INTERFACE_ID (8 bits)", b.Domain, b)
	}
	id := InterfaceID(b.RequesterID()) | InterfaceID(b.Domain)<<16
	if b.Domain != 0 {
		id |= segmentValid
	}
	return id, nil
}

// RequesterID returns bus<<8 | devfn.
func (id InterfaceID) RequesterID() uint16 { return uint16(id) }

// Segment returns the segment and whether the valid bit is set.
func (id InterfaceID) Segment() (uint8, bool) { return uint8(id >> 16), id&segmentValid != 0 }

func (id InterfaceID) String() string {
	seg, ok := id.Segment()
	rid := id.RequesterID()
	if !ok {
		seg = 0
	}
	return fmt.Sprintf("%04x:%02x:%02x.%x", seg, rid>>8, rid>>3&0x1f, rid&7)
}

// Header is the 16-byte TDISP message header.
type Header struct {
	Version   uint8
	Type      MessageType
	Interface InterfaceID
}

// Message is one TDISP request or response body.
type Message interface {
	Type() MessageType
	appendBody(b *wire.Builder)
	decodeBody(s *wire.String) bool
}

// Packet is a decoded TDISP payload: header and typed body.
type Packet struct {
	Header
	Msg Message
}

// Encode returns the VENDOR_DEFINED payload: protocol ID ‖ header ‖ body.
// The header's Type is taken from m.
func Encode(h Header, m Message) []byte {
	b := wire.NewBuilder(make([]byte, 0, 64))
	b.AddU8(ProtocolID).AddU8(h.Version).AddU8(uint8(m.Type())).AddZeros(2)
	b.AddU32(uint32(h.Interface)).AddZeros(8)
	m.appendBody(b)
	return b.Bytes()
}

// DecodeError says which field of a TDISP payload was wrong.
type DecodeError struct {
	Msg    string
	Field  string
	Offset int
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("tdisp: decode %s: bad %s at offset %d", e.Msg, e.Field, e.Offset)
}

func newMessage(t MessageType) Message {
	switch t {
	case MsgGetVersion:
		return &GetVersion{}
	case MsgVersion:
		return &Version{}
	case MsgGetCapabilities:
		return &GetCapabilities{}
	case MsgCapabilities:
		return &Capabilities{}
	case MsgLockInterface:
		return &LockInterface{}
	case MsgLockInterfaceRsp:
		return &LockInterfaceResponse{}
	case MsgGetReport:
		return &GetReport{}
	case MsgReport:
		return &ReportPortion{}
	case MsgGetState:
		return &GetState{}
	case MsgState:
		return &StateResponse{}
	case MsgStartInterface:
		return &StartInterface{}
	case MsgStopInterface:
		return &StopInterface{}
	case MsgBindP2PStream:
		return &BindP2PStream{}
	case MsgUnbindP2PStream:
		return &UnbindP2PStream{}
	case MsgSetMMIOAttribute:
		return &SetMMIOAttribute{}
	case MsgStartInterfaceRsp, MsgStopInterfaceRsp, MsgBindP2PStreamRsp, MsgUnbindP2PStreamRsp, MsgSetMMIOAttributeRsp:
		return &Empty{T: t}
	case MsgVDMRequest, MsgVDMResponse:
		return &VDM{T: t}
	case MsgError:
		return &ErrorResponse{}
	}
	return nil
}

// Decode parses a VENDOR_DEFINED payload (protocol ID first). Every byte must
// be accounted for: trailing bytes are an error.
func Decode(p []byte) (*Packet, error) {
	s := wire.String(p)
	var proto, ver, typ uint8
	var fid uint32
	if !s.ReadU8(&proto) || proto != ProtocolID {
		return nil, &DecodeError{Msg: "payload", Field: "ProtocolID", Offset: 0}
	}
	if len(p) > MaxPayload {
		return nil, &DecodeError{Msg: "payload", Field: "length", Offset: MaxPayload}
	}
	if !s.ReadU8(&ver) || !s.ReadU8(&typ) || !s.Skip(2) || !s.ReadU32(&fid) || !s.Skip(8) {
		return nil, &DecodeError{Msg: "payload", Field: "header", Offset: len(p) - s.Len()}
	}
	t := MessageType(typ)
	m := newMessage(t)
	if m == nil {
		return nil, &DecodeError{Msg: t.String(), Field: "MessageType", Offset: 2}
	}
	if !m.decodeBody(&s) || !s.Empty() {
		return nil, &DecodeError{Msg: t.String(), Field: "body", Offset: len(p) - s.Len()}
	}
	return &Packet{Header: Header{Version: ver, Type: t, Interface: InterfaceID(fid)}, Msg: m}, nil
}

// GetVersion is GET_TDISP_VERSION (no body).
type GetVersion struct{}

func (*GetVersion) Type() MessageType              { return MsgGetVersion }
func (*GetVersion) appendBody(*wire.Builder)       {}
func (*GetVersion) decodeBody(s *wire.String) bool { return true }

// Version is TDISP_VERSION: VersionNumEntryCount(1) ‖ entries(1 each).
type Version struct{ Versions []uint8 }

func (*Version) Type() MessageType { return MsgVersion }
func (m *Version) appendBody(b *wire.Builder) {
	b.AddU8(uint8(len(m.Versions))).AddBytes(m.Versions)
}
func (m *Version) decodeBody(s *wire.String) bool {
	var n uint8
	var v []byte
	if !s.ReadU8(&n) || n == 0 || !s.ReadBytes(&v, int(n)) {
		return false
	}
	m.Versions = append([]uint8(nil), v...)
	return true
}

// GetCapabilities is GET_TDISP_CAPABILITIES: TSM_CAPS(4).
type GetCapabilities struct{ TSMCaps uint32 }

func (*GetCapabilities) Type() MessageType                { return MsgGetCapabilities }
func (m *GetCapabilities) appendBody(b *wire.Builder)     { b.AddU32(m.TSMCaps) }
func (m *GetCapabilities) decodeBody(s *wire.String) bool { return s.ReadU32(&m.TSMCaps) }

// Capabilities is TDISP_CAPABILITIES.
type Capabilities struct {
	DSMCaps uint32 `json:"dsm_caps"`
	// ReqMsgsSupported is a bitmap of supported requests (bit n = 0x80+n, inferred).
	ReqMsgsSupported   [16]byte  `json:"req_msgs_supported"`
	LockFlagsSupported LockFlags `json:"lock_flags_supported"`
	DevAddrWidth       uint8     `json:"dev_addr_width"`
	NumReqThis         uint8     `json:"num_req_this"`
	NumReqAll          uint8     `json:"num_req_all"`
}

func (*Capabilities) Type() MessageType { return MsgCapabilities }
func (m *Capabilities) appendBody(b *wire.Builder) {
	b.AddU32(m.DSMCaps).AddBytes(m.ReqMsgsSupported[:]).AddU16(uint16(m.LockFlagsSupported)).AddZeros(3).
		AddU8(m.DevAddrWidth).AddU8(m.NumReqThis).AddU8(m.NumReqAll)
}
func (m *Capabilities) decodeBody(s *wire.String) bool {
	var f uint16
	ok := s.ReadU32(&m.DSMCaps) && s.CopyBytes(m.ReqMsgsSupported[:]) && s.ReadU16(&f) && s.Skip(3) &&
		s.ReadU8(&m.DevAddrWidth) && s.ReadU8(&m.NumReqThis) && s.ReadU8(&m.NumReqAll)
	m.LockFlagsSupported = LockFlags(f)
	return ok
}

// Supports reports whether the capabilities list request t as supported.
func (m *Capabilities) Supports(t MessageType) bool {
	if !t.IsRequest() {
		return false
	}
	n := int(t - msgRequestBit)
	return n/8 < len(m.ReqMsgsSupported) && m.ReqMsgsSupported[n/8]&(1<<(n%8)) != 0
}

// LockFlags are the LOCK_INTERFACE_REQUEST FLAGS (and *_SUPPORTED).
type LockFlags uint16

const (
	LockNoFWUpdate          LockFlags = 1 << 0
	LockSystemCacheLineSize LockFlags = 1 << 1
	LockMSIX                LockFlags = 1 << 2
	LockBindP2P             LockFlags = 1 << 3
	LockAllRequestRedirect  LockFlags = 1 << 4
	lockFlagsDefined                  = LockNoFWUpdate | LockSystemCacheLineSize | LockMSIX | LockBindP2P | LockAllRequestRedirect
)

// LockInterface is LOCK_INTERFACE_REQUEST.
type LockInterface struct {
	Flags               LockFlags
	DefaultStreamID     uint8
	MMIOReportingOffset uint64
	BindP2PAddressMask  uint64
}

func (*LockInterface) Type() MessageType { return MsgLockInterface }
func (m *LockInterface) appendBody(b *wire.Builder) {
	b.AddU16(uint16(m.Flags)).AddU8(m.DefaultStreamID).AddZeros(1).AddU64(m.MMIOReportingOffset).AddU64(m.BindP2PAddressMask)
}
func (m *LockInterface) decodeBody(s *wire.String) bool {
	var f uint16
	ok := s.ReadU16(&f) && s.ReadU8(&m.DefaultStreamID) && s.Skip(1) && s.ReadU64(&m.MMIOReportingOffset) &&
		s.ReadU64(&m.BindP2PAddressMask)
	m.Flags = LockFlags(f)
	return ok
}

// LockInterfaceResponse is LOCK_INTERFACE_RESPONSE: START_INTERFACE_NONCE(32).
type LockInterfaceResponse struct{ Nonce [NonceSize]byte }

func (*LockInterfaceResponse) Type() MessageType                { return MsgLockInterfaceRsp }
func (m *LockInterfaceResponse) appendBody(b *wire.Builder)     { b.AddBytes(m.Nonce[:]) }
func (m *LockInterfaceResponse) decodeBody(s *wire.String) bool { return s.CopyBytes(m.Nonce[:]) }

// GetReport is GET_DEVICE_INTERFACE_REPORT: OFFSET(2), LENGTH(2).
type GetReport struct{ Offset, Length uint16 }

func (*GetReport) Type() MessageType            { return MsgGetReport }
func (m *GetReport) appendBody(b *wire.Builder) { b.AddU16(m.Offset).AddU16(m.Length) }
func (m *GetReport) decodeBody(s *wire.String) bool {
	return s.ReadU16(&m.Offset) && s.ReadU16(&m.Length)
}

// ReportPortion is DEVICE_INTERFACE_REPORT: PORTION_LENGTH(2),
// REMAINDER_LENGTH(2), then PORTION_LENGTH bytes of the report.
type ReportPortion struct {
	Remainder uint16
	Portion   []byte
}

func (*ReportPortion) Type() MessageType { return MsgReport }
func (m *ReportPortion) appendBody(b *wire.Builder) {
	b.AddU16(uint16(len(m.Portion))).AddU16(m.Remainder).AddBytes(m.Portion)
}
func (m *ReportPortion) decodeBody(s *wire.String) bool {
	var n uint16
	var p []byte
	if !s.ReadU16(&n) || !s.ReadU16(&m.Remainder) || !s.ReadBytes(&p, int(n)) {
		return false
	}
	m.Portion = append([]byte(nil), p...)
	return true
}

// GetState is GET_DEVICE_INTERFACE_STATE (no body).
type GetState struct{}

func (*GetState) Type() MessageType              { return MsgGetState }
func (*GetState) appendBody(*wire.Builder)       {}
func (*GetState) decodeBody(s *wire.String) bool { return true }

// StateResponse is DEVICE_INTERFACE_STATE: TDI_STATE(1).
type StateResponse struct{ State State }

func (*StateResponse) Type() MessageType            { return MsgState }
func (m *StateResponse) appendBody(b *wire.Builder) { b.AddU8(uint8(m.State)) }
func (m *StateResponse) decodeBody(s *wire.String) bool {
	var v uint8
	if !s.ReadU8(&v) || State(v) > StateError {
		return false
	}
	m.State = State(v)
	return true
}

// StartInterface is START_INTERFACE_REQUEST: START_INTERFACE_NONCE(32).
type StartInterface struct{ Nonce [NonceSize]byte }

func (*StartInterface) Type() MessageType                { return MsgStartInterface }
func (m *StartInterface) appendBody(b *wire.Builder)     { b.AddBytes(m.Nonce[:]) }
func (m *StartInterface) decodeBody(s *wire.String) bool { return s.CopyBytes(m.Nonce[:]) }

// StopInterface is STOP_INTERFACE_REQUEST (no body).
type StopInterface struct{}

func (*StopInterface) Type() MessageType              { return MsgStopInterface }
func (*StopInterface) appendBody(*wire.Builder)       {}
func (*StopInterface) decodeBody(s *wire.String) bool { return true }

// BindP2PStream is BIND_P2P_STREAM_REQUEST: P2P_STREAM_ID(1).
type BindP2PStream struct{ StreamID uint8 }

func (*BindP2PStream) Type() MessageType                { return MsgBindP2PStream }
func (m *BindP2PStream) appendBody(b *wire.Builder)     { b.AddU8(m.StreamID) }
func (m *BindP2PStream) decodeBody(s *wire.String) bool { return s.ReadU8(&m.StreamID) }

// UnbindP2PStream is UNBIND_P2P_STREAM_REQUEST: P2P_STREAM_ID(1).
type UnbindP2PStream struct{ StreamID uint8 }

func (*UnbindP2PStream) Type() MessageType                { return MsgUnbindP2PStream }
func (m *UnbindP2PStream) appendBody(b *wire.Builder)     { b.AddU8(m.StreamID) }
func (m *UnbindP2PStream) decodeBody(s *wire.String) bool { return s.ReadU8(&m.StreamID) }

// SetMMIOAttribute is SET_MMIO_ATTRIBUTE_REQUEST: one MMIO_RANGE(16).
type SetMMIOAttribute struct{ Range MMIORange }

func (*SetMMIOAttribute) Type() MessageType                { return MsgSetMMIOAttribute }
func (m *SetMMIOAttribute) appendBody(b *wire.Builder)     { m.Range.append(b) }
func (m *SetMMIOAttribute) decodeBody(s *wire.String) bool { return m.Range.decode(s) }

// Empty is a response without a body (START/STOP/BIND/UNBIND/SET_MMIO_ATTRIBUTE).
type Empty struct{ T MessageType }

func (m *Empty) Type() MessageType            { return m.T }
func (*Empty) appendBody(*wire.Builder)       {}
func (*Empty) decodeBody(s *wire.String) bool { return true }

// VDM is VDM_REQUEST / VDM_RESPONSE; the body layout is vendor-defined and
// kept opaque.
type VDM struct {
	T    MessageType
	Body []byte
}

func (m *VDM) Type() MessageType          { return m.T }
func (m *VDM) appendBody(b *wire.Builder) { b.AddBytes(m.Body) }
func (m *VDM) decodeBody(s *wire.String) bool {
	var v []byte
	if !s.ReadBytes(&v, s.Len()) {
		return false
	}
	m.Body = append([]byte(nil), v...)
	return true
}

// ErrorResponse is TDISP_ERROR: ERROR_CODE(4), ERROR_DATA(4), optional
// extended error data (kept raw).
type ErrorResponse struct {
	Code     ErrorCode
	Data     uint32
	Extended []byte
}

func (*ErrorResponse) Type() MessageType { return MsgError }
func (m *ErrorResponse) appendBody(b *wire.Builder) {
	b.AddU32(uint32(m.Code)).AddU32(m.Data).AddBytes(m.Extended)
}
func (m *ErrorResponse) decodeBody(s *wire.String) bool {
	var c uint32
	var ext []byte
	if !s.ReadU32(&c) || !s.ReadU32(&m.Data) || !s.ReadBytes(&ext, s.Len()) {
		return false
	}
	m.Code = ErrorCode(c)
	if len(ext) > 0 {
		m.Extended = append([]byte(nil), ext...)
	}
	return true
}
