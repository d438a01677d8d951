package spdm

import (
	"fmt"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// ---- Session messages. DSP0274 1.3 §10.16–10.21, SPEC-FACTS §2.11 ----

// Session policy bits (KEY_EXCHANGE SessionPolicy, 1.2+).
const (
	// SessionPolicyTerminateOnUpdate asks the responder to end the session
	// when its runtime firmware is updated.
	SessionPolicyTerminateOnUpdate uint8 = 1 << 0
)

// KEY_UPDATE operations (Param1).
type KeyUpdateOp uint8

const (
	KeyUpdateKey          KeyUpdateOp = 1 // UpdateKey: the requester's (request direction) key
	KeyUpdateAllKeys      KeyUpdateOp = 2 // UpdateAllKeys: both directions
	KeyUpdateVerifyNewKey KeyUpdateOp = 3 // VerifyNewKey: first message under the new key(s)
)

func (o KeyUpdateOp) String() string {
	switch o {
	case KeyUpdateKey:
		return "UpdateKey"
	case KeyUpdateAllKeys:
		return "UpdateAllKeys"
	case KeyUpdateVerifyNewKey:
		return "VerifyNewKey"
	}
	return fmt.Sprintf("KeyUpdateOp(%d)", uint8(o))
}

// dheSize is the ExchangeData size D of a DHE group (0 = unsupported here).
func dheSize(d DHEAlgo) int {
	switch d {
	case DHESECP256R1:
		return 64
	case DHESECP384R1:
		return 96
	case DHESECP521R1:
		return 132
	case DHEFFDHE2048:
		return 256
	case DHEFFDHE3072:
		return 384
	case DHEFFDHE4096:
		return 512
	}
	return 0
}

type keyExchangeReq struct {
	Version      Version
	SummaryType  uint8
	Slot         uint8
	ReqSessionID uint16
	Policy       uint8 // 1.2+; reserved before
	Random       [nonceLen]byte
	Exchange     []byte
	Opaque       []byte
	raw          []byte
}

func (m *keyExchangeReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestKeyExchange), m.SummaryType, m.Slot}.append(wire.NewBuilder(nil)).
		AddU16(m.ReqSessionID).AddU8(m.Policy).AddU8(0).AddBytes(m.Random[:]).AddBytes(m.Exchange).
		AddU16(uint16(len(m.Opaque))).AddBytes(m.Opaque).Bytes()
}

// decodeKeyExchangeReq needs the ExchangeData size D of the negotiated group.
func decodeKeyExchangeReq(b []byte, exchangeSize int) (*keyExchangeReq, error) {
	d, h, m := newDecoder("KEY_EXCHANGE", b), hdr{}, &keyExchangeReq{raw: b}
	var opaqueLen uint16
	ok := d.header(&h, uint8(RequestKeyExchange)) &&
		d.check(h.Version >= Version11, "SPDMVersion", "no sessions before 1.1") &&
		d.check(validSummaryType(h.Param1), "Param1", "unknown measurement summary hash type") &&
		d.check(h.Param2 < maxSlots || h.Param2 == 0xFF, "Param2", "slot out of range") &&
		d.u16(&m.ReqSessionID, "ReqSessionID") && d.u8(&m.Policy, "SessionPolicy") &&
		d.check(h.Version >= Version12 || m.Policy == 0, "SessionPolicy", "reserved before 1.2") &&
		d.mbz(1, "Reserved") && d.fixed(m.Random[:], "RandomData") &&
		d.bytes(&m.Exchange, exchangeSize, "ExchangeData") &&
		d.u16(&opaqueLen, "OpaqueDataLength") && d.check(opaqueLen <= maxOpaqueLen, "OpaqueDataLength", "over 1024") &&
		d.bytes(&m.Opaque, int(opaqueLen), "OpaqueData") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.SummaryType, m.Slot = h.Version, h.Param1, h.Param2
	return m, nil
}

type keyExchangeRsp struct {
	Version         Version
	HeartbeatPeriod uint8
	RspSessionID    uint16
	MutAuth         uint8
	ReqSlot         uint8
	Random          [nonceLen]byte
	Exchange        []byte
	SummaryHash     []byte // present when the request's summary type was not 0
	Opaque          []byte
	Signature       []byte
	VerifyData      []byte // ResponderVerifyData, absent when the handshake is in the clear
	raw             []byte
}

func (m *keyExchangeRsp) marshal() []byte {
	return hdr{m.Version, uint8(ResponseKeyExchangeRsp), m.HeartbeatPeriod, 0}.append(wire.NewBuilder(nil)).
		AddU16(m.RspSessionID).AddU8(m.MutAuth).AddU8(m.ReqSlot).AddBytes(m.Random[:]).AddBytes(m.Exchange).
		AddBytes(m.SummaryHash).AddU16(uint16(len(m.Opaque))).AddBytes(m.Opaque).AddBytes(m.Signature).
		AddBytes(m.VerifyData).Bytes()
}

// unsigned is the message up to (excluding) the signature.
func (m *keyExchangeRsp) unsigned() []byte {
	return m.raw[:len(m.raw)-len(m.Signature)-len(m.VerifyData)]
}

// keyExchangeRspShape is what decoding KEY_EXCHANGE_RSP needs from the
// negotiation and the request.
type keyExchangeRspShape struct {
	exchange, hash, sig int
	summary             bool
	verifyData          bool // ResponderVerifyData present (handshake not in the clear)
}

func decodeKeyExchangeRsp(b []byte, s keyExchangeRspShape) (*keyExchangeRsp, error) {
	d, h, m := newDecoder("KEY_EXCHANGE_RSP", b), hdr{}, &keyExchangeRsp{raw: b}
	var opaqueLen uint16
	ok := d.header(&h, uint8(ResponseKeyExchangeRsp)) &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.u16(&m.RspSessionID, "RspSessionID") && d.u8(&m.MutAuth, "MutAuthRequested") &&
		d.u8(&m.ReqSlot, "ReqSlotIDParam") && d.fixed(m.Random[:], "RandomData") &&
		d.bytes(&m.Exchange, s.exchange, "ExchangeData") &&
		(!s.summary || d.bytes(&m.SummaryHash, s.hash, "MeasurementSummaryHash")) &&
		d.u16(&opaqueLen, "OpaqueDataLength") && d.check(opaqueLen <= maxOpaqueLen, "OpaqueDataLength", "over 1024") &&
		d.bytes(&m.Opaque, int(opaqueLen), "OpaqueData") && d.bytes(&m.Signature, s.sig, "Signature") &&
		(!s.verifyData || d.bytes(&m.VerifyData, s.hash, "ResponderVerifyData")) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.HeartbeatPeriod = h.Version, h.Param1
	return m, nil
}

type finishReq struct {
	Version    Version
	Param1     uint8 // bit 0: signature included (mutual authentication)
	ReqSlot    uint8
	VerifyData []byte
	raw        []byte
}

func (m *finishReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestFinish), m.Param1, m.ReqSlot}.append(wire.NewBuilder(nil)).AddBytes(m.VerifyData).Bytes()
}

// decodeFinishReq decodes FINISH without mutual authentication.
func decodeFinishReq(b []byte, hashSize int) (*finishReq, error) {
	d, h, m := newDecoder("FINISH", b), hdr{}, &finishReq{raw: b}
	ok := d.header(&h, uint8(RequestFinish)) &&
		d.check(h.Param1 == 0, "Param1", "signature included without mutual authentication") &&
		d.bytes(&m.VerifyData, hashSize, "RequesterVerifyData") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Param1, m.ReqSlot = h.Version, h.Param1, h.Param2
	return m, nil
}

type finishRsp struct {
	Version    Version
	VerifyData []byte // ResponderVerifyData, only when the handshake is in the clear
	raw        []byte
}

func (m *finishRsp) marshal() []byte {
	return hdr{m.Version, uint8(ResponseFinishRsp), 0, 0}.append(wire.NewBuilder(nil)).AddBytes(m.VerifyData).Bytes()
}

// decodeFinishRsp needs the verify-data size (0 when the handshake was encrypted).
func decodeFinishRsp(b []byte, verifySize int) (*finishRsp, error) {
	d, h, m := newDecoder("FINISH_RSP", b), hdr{}, &finishRsp{raw: b}
	ok := d.header(&h, uint8(ResponseFinishRsp)) &&
		d.check(h.Param1 == 0 && h.Param2 == 0, "Param1", "reserved not zero") &&
		(verifySize == 0 || d.bytes(&m.VerifyData, verifySize, "ResponderVerifyData")) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version = h.Version
	return m, nil
}

// simpleMsg is a header-only message: HEARTBEAT(_ACK), KEY_UPDATE(_ACK),
// END_SESSION(_ACK).
type simpleMsg struct {
	Version        Version
	Code           uint8
	Param1, Param2 uint8
}

func (m *simpleMsg) marshal() []byte {
	return hdr{m.Version, m.Code, m.Param1, m.Param2}.append(wire.NewBuilder(nil)).Bytes()
}

func decodeSimple(name string, code uint8, b []byte) (*simpleMsg, error) {
	d, h := newDecoder(name, b), hdr{}
	if !(d.header(&h, code) && d.end()) {
		return nil, d.err()
	}
	return &simpleMsg{Version: h.Version, Code: h.Code, Param1: h.Param1, Param2: h.Param2}, nil
}

// ---- Secured-message version negotiation in OpaqueData (DSP0277, DSP0274 Annex) ----

const (
	opaqueSpecIDDMTF     uint32 = 0x444D5446 // "DMTF" (DSP0277 1.0/1.1 header form)
	opaqueVersion1       uint8  = 1
	smDataVersion        uint8  = 1
	smDataIDSelection    uint8  = 0
	smDataIDSupported    uint8  = 1
	opaqueElementIDDMTF  uint8  = 0
	maxSecuredMsgVersion        = 16
)

// Secured-message versions we offer (the u16 VersionNumber form, major<<12 | minor<<8).
var securedMsgVersions = []uint16{0x1000, 0x1100, 0x1200}

// opaqueElement is one element of OpaqueData.
type opaqueElement struct {
	ID       uint8
	VendorID []byte
	Data     []byte
}

// marshalOpaque encodes elements in the general format (OpaqueDataFormat 1,
// 1.2+) when fmt1 is set, else with the DSP0277 header.
func marshalOpaque(fmt1 bool, els []opaqueElement) []byte {
	b := wire.NewBuilder(nil)
	if fmt1 {
		b.AddU8(uint8(len(els))).AddZeros(3)
	} else {
		b.AddU32(opaqueSpecIDDMTF).AddU8(opaqueVersion1).AddU8(uint8(len(els))).AddU16(0)
	}
	for _, e := range els {
		b.AddU8(e.ID).AddU8(uint8(len(e.VendorID))).AddBytes(e.VendorID).AddU16(uint16(len(e.Data))).AddBytes(e.Data)
		for b.Len()%4 != 0 {
			b.AddU8(0)
		}
	}
	return b.Bytes()
}

// decodeOpaque parses OpaqueData in either form.
func decodeOpaque(b []byte, fmt1 bool) ([]opaqueElement, error) {
	d := newDecoder("OpaqueData", b)
	var n uint8
	ok := true
	if fmt1 {
		ok = d.u8(&n, "TotalElements") && d.mbz(3, "Reserved")
	} else {
		var spec uint32
		var ver uint8
		ok = d.u32(&spec, "SpecID") && d.check(spec == opaqueSpecIDDMTF, "SpecID", "not DMTF") &&
			d.u8(&ver, "OpaqueVersion") && d.check(ver == opaqueVersion1, "OpaqueVersion", "not 1") &&
			d.u8(&n, "TotalElements") && d.mbz(2, "Reserved")
	}
	if !ok {
		return nil, d.err()
	}
	var out []opaqueElement
	for range n {
		var e opaqueElement
		var vl uint8
		var dl uint16
		if !(d.u8(&e.ID, "ElementID") && d.u8(&vl, "VendorLen") && d.bytes(&e.VendorID, int(vl), "VendorID") &&
			d.u16(&dl, "OpaqueElementDataLen") && d.bytes(&e.Data, int(dl), "OpaqueElementData")) {
			return nil, d.err()
		}
		if pad := (4 - d.off()%4) % 4; pad > 0 && !d.mbz(pad, "AlignPadding") {
			return nil, d.err()
		}
		out = append(out, e)
	}
	if !d.end() {
		return nil, d.err()
	}
	return out, nil
}

// smSupportedElement is the requester's secured-message version list.
func smSupportedElement(vs []uint16) opaqueElement {
	b := wire.NewBuilder(nil).AddU8(smDataVersion).AddU8(smDataIDSupported).AddU8(uint8(len(vs)))
	for _, v := range vs {
		b.AddU16(v)
	}
	return opaqueElement{ID: opaqueElementIDDMTF, Data: b.Bytes()}
}

// smSelectionElement is the responder's selected secured-message version.
func smSelectionElement(v uint16) opaqueElement {
	return opaqueElement{ID: opaqueElementIDDMTF, Data: wire.NewBuilder(nil).AddU8(smDataVersion).AddU8(smDataIDSelection).AddU16(v).Bytes()}
}

// smElement finds the DMTF secured-message element with data id want and
// returns its body after sm_data_version and sm_data_id.
func smElement(els []opaqueElement, want uint8) ([]byte, bool) {
	for _, e := range els {
		if e.ID != opaqueElementIDDMTF || len(e.VendorID) != 0 || len(e.Data) < 2 || e.Data[0] != smDataVersion {
			continue
		}
		if e.Data[1] == want {
			return e.Data[2:], true
		}
	}
	return nil, false
}

// parseSMSupported reads a supported-version list body.
func parseSMSupported(b []byte) ([]uint16, bool) {
	s := wire.String(b)
	var n uint8
	if !s.ReadU8(&n) || n == 0 || n > maxSecuredMsgVersion {
		return nil, false
	}
	out := make([]uint16, n)
	for i := range out {
		if !s.ReadU16(&out[i]) {
			return nil, false
		}
	}
	return out, s.Empty()
}

// parseSMSelection reads a version-selection body.
func parseSMSelection(b []byte) (uint16, bool) {
	s := wire.String(b)
	var v uint16
	return v, s.ReadU16(&v) && s.Empty()
}
