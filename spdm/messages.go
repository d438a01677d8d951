package spdm

// Message codecs, one section per request/response pair, each with the
// DSP0274 section it follows: here the shared sizes and VCA (GET_VERSION,
// GET_CAPABILITIES, NEGOTIATE_ALGORITHMS); messages_auth.go has
// certificates, CHALLENGE and measurements, messages_transfer.go ERROR,
// chunking and VENDOR_DEFINED, session_msgs.go the session messages.

import (
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Sizes and caps. DSP0274 1.3 and SPEC-FACTS §7.
const (
	hdrLen              = 4
	nonceLen            = 32
	requesterContextLen = 8
	maxOpaqueLen        = 1024
	maxSlots            = 8
	minDataTransferSize = 42
	maxErrorExtLen      = 32
	maxAlgRequestLen    = 128
	maxAlgRequestLen10  = 64
	maxExtAlgCount      = 20
	maxCertChainLen     = 0xFFFF
)

// ---- GET_VERSION / VERSION. DSP0274 1.3 §10.3 ----

// getVersionReq is GET_VERSION. Always sent with version 1.0.
type getVersionReq struct{ raw []byte }

func (m *getVersionReq) marshal() []byte {
	return hdr{Version10, uint8(RequestGetVersion), 0, 0}.append(wire.NewBuilder(nil)).Bytes()
}

func decodeGetVersionReq(b []byte) (*getVersionReq, error) {
	d, h := newDecoder("GET_VERSION", b), hdr{}
	ok := d.header(&h, uint8(RequestGetVersion)) &&
		d.check(h.Version == Version10, "SPDMVersion", "must be 1.0") &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") && d.end()
	if !ok {
		return nil, d.err()
	}
	return &getVersionReq{raw: b}, nil
}

// versionRsp is VERSION. Entries: [15:12] major [11:8] minor [7:4] update [3:0] alpha.
type versionRsp struct {
	Entries []uint16
	raw     []byte
}

func (m *versionRsp) marshal() []byte {
	b := hdr{Version10, uint8(ResponseVersion), 0, 0}.append(wire.NewBuilder(nil)).AddU8(0).AddU8(uint8(len(m.Entries)))
	for _, e := range m.Entries {
		b.AddU16(e)
	}
	return b.Bytes()
}

func decodeVersionRsp(b []byte) (*versionRsp, error) {
	d, h, m := newDecoder("VERSION", b), hdr{}, &versionRsp{raw: b}
	var n uint8
	ok := d.header(&h, uint8(ResponseVersion)) &&
		d.check(h.Version == Version10, "SPDMVersion", "must be 1.0") &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.mbz(1, "Reserved") && d.u8(&n, "VersionNumberEntryCount") &&
		d.check(n > 0, "VersionNumberEntryCount", "zero entries") &&
		(wire.ReadU16s(&d.s, &m.Entries, int(n)) || d.fail("VersionNumberEntry", "short message")) && d.end()
	if !ok {
		return nil, d.err()
	}
	return m, nil
}

// ---- GET_CAPABILITIES / CAPABILITIES. DSP0274 1.3 §10.4 ----

// Capability flags (requester and responder share bit positions).
const (
	CapCache            uint32 = 1 << 0
	CapCert             uint32 = 1 << 1
	CapChal             uint32 = 1 << 2
	CapMeasNoSig        uint32 = 1 << 3
	CapMeasSig          uint32 = 2 << 3
	CapMeasMask         uint32 = 3 << 3
	CapMeasFresh        uint32 = 1 << 5
	CapEncrypt          uint32 = 1 << 6
	CapMAC              uint32 = 1 << 7
	CapMutAuth          uint32 = 1 << 8
	CapKeyEx            uint32 = 1 << 9
	CapPSKMask          uint32 = 3 << 10
	CapEncap            uint32 = 1 << 12
	CapHBeat            uint32 = 1 << 13
	CapKeyUpd           uint32 = 1 << 14
	CapHandshakeInClear uint32 = 1 << 15
	CapPubKeyID         uint32 = 1 << 16
	CapChunk            uint32 = 1 << 17
	CapAliasCert        uint32 = 1 << 18
	CapEPInfoMask       uint32 = 3 << 22
	CapMultiKeyMask     uint32 = 3 << 26
	CapGetKeyPairInfo   uint32 = 1 << 28 // 1.3
	CapSetKeyPairInfo   uint32 = 1 << 29 // 1.3
)

type getCapabilitiesReq struct {
	Version          Version
	Param1           uint8 // 1.3: bit 0 asks for the supported-algorithms block
	CTExponent       uint8
	Flags            uint32
	DataTransferSize uint32
	MaxSPDMmsgSize   uint32
	raw              []byte
}

func (m *getCapabilitiesReq) marshal() []byte {
	b := hdr{m.Version, uint8(RequestGetCapabilities), m.Param1, 0}.append(wire.NewBuilder(nil))
	if m.Version >= Version11 {
		b.AddU8(0).AddU8(m.CTExponent).AddU16(0).AddU32(m.Flags)
	}
	if m.Version >= Version12 {
		b.AddU32(m.DataTransferSize).AddU32(m.MaxSPDMmsgSize)
	}
	return b.Bytes()
}

func decodeGetCapabilitiesReq(b []byte) (*getCapabilitiesReq, error) {
	d, h, m := newDecoder("GET_CAPABILITIES", b), hdr{}, &getCapabilitiesReq{raw: b}
	ok := d.header(&h, uint8(RequestGetCapabilities)) &&
		d.check(h.Param1 == 0 || (h.Version >= Version13 && h.Param1 == 1), "Param1", "reserved bits set") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero")
	m.Version, m.Param1 = h.Version, h.Param1
	if ok && h.Version >= Version11 {
		ok = d.mbz(1, "Reserved") && d.u8(&m.CTExponent, "CTExponent") && d.mbz(2, "Reserved") && d.u32(&m.Flags, "Flags")
	}
	if ok && h.Version >= Version12 {
		ok = d.transferSizes(&m.DataTransferSize, &m.MaxSPDMmsgSize)
	}
	if !ok || !d.end() {
		return nil, d.err()
	}
	return m, nil
}

type capabilitiesRsp struct {
	Version          Version
	CTExponent       uint8
	Flags            uint32
	DataTransferSize uint32               // 1.2+
	MaxSPDMmsgSize   uint32               // 1.2+
	Supported        *SupportedAlgorithms // 1.3, when asked for (GET_CAPABILITIES Param1 bit 0)
	raw              []byte
}

// SupportedAlgorithms is the 1.3 supported-algorithms block a responder
// appends to CAPABILITIES when asked: every algorithm it supports, in the
// layout of the NEGOTIATE_ALGORITHMS body without its first two bytes.
// DSP0274 1.3.0 §10.4 (Table "Supported Algorithms Block").
type SupportedAlgorithms struct {
	MeasSpec    uint8
	OtherParams uint8
	BaseAsym    AsymAlgo
	BaseHash    HashAlgo
	MELSpec     uint8
	DHE         DHEAlgo
	AEAD        AEADAlgo
	ReqBaseAsym AsymAlgo
	KeySchedule KeySchedule
}

func (s *SupportedAlgorithms) algStructs() []algStruct {
	var out []algStruct
	for _, a := range []algStruct{{Type: algTypeDHE, Supported: uint16(s.DHE)}, {Type: algTypeAEAD, Supported: uint16(s.AEAD)},
		{Type: algTypeReqBaseAsym, Supported: uint16(s.ReqBaseAsym)}, {Type: algTypeKeySchedule, Supported: uint16(s.KeySchedule)}} {
		if a.Supported != 0 {
			out = append(out, a)
		}
	}
	return out
}

func (s *SupportedAlgorithms) append(b *wire.Builder) {
	algs := s.algStructs()
	start := b.Len()
	b.AddU8(uint8(len(algs))).AddU8(0).AddU16(0).AddU8(s.MeasSpec).AddU8(s.OtherParams).
		AddU32(uint32(s.BaseAsym)).AddU32(uint32(s.BaseHash)).AddZeros(12).AddU8(0).AddU8(0).AddU8(0).AddU8(s.MELSpec)
	appendAlgStructs(b, algs)
	b.SetU16At(start+2, uint16(b.Len()-start))
}

// supportedAlgs reads the block: Length must cover exactly what it holds;
// no external algorithms are accepted.
func (d *decoder) supportedAlgs(out **SupportedAlgorithms) bool {
	s := &SupportedAlgorithms{}
	start := d.off()
	var n, extA, extH uint8
	var length uint16
	var asym, hash uint32
	var algs []algStruct
	ok := d.u8(&n, "SupportedAlgorithms.Param1") && d.mbz(1, "SupportedAlgorithms.Param2") && d.u16(&length, "SupportedAlgorithms.Length") &&
		d.u8(&s.MeasSpec, "SupportedAlgorithms.MeasurementSpecification") && d.u8(&s.OtherParams, "SupportedAlgorithms.OtherParamsSupport") &&
		d.u32(&asym, "SupportedAlgorithms.BaseAsymAlgo") && d.u32(&hash, "SupportedAlgorithms.BaseHashAlgo") && d.mbz(12, "SupportedAlgorithms.Reserved") &&
		d.u8(&extA, "SupportedAlgorithms.ExtAsymCount") && d.u8(&extH, "SupportedAlgorithms.ExtHashCount") &&
		d.check(extA == 0 && extH == 0, "SupportedAlgorithms.ExtAsymCount", "external algorithms are not supported") &&
		d.mbz(1, "SupportedAlgorithms.Reserved") && d.u8(&s.MELSpec, "SupportedAlgorithms.MELspecification") &&
		d.algStructs(&algs, int(n), 0) &&
		d.check(int(length) == d.off()-start, "SupportedAlgorithms.Length", "does not match the block")
	if !ok {
		return false
	}
	s.BaseAsym, s.BaseHash = AsymAlgo(asym), HashAlgo(hash)
	for _, a := range algs {
		switch a.Type {
		case algTypeDHE:
			s.DHE = DHEAlgo(a.Supported)
		case algTypeAEAD:
			s.AEAD = AEADAlgo(a.Supported)
		case algTypeReqBaseAsym:
			s.ReqBaseAsym = AsymAlgo(a.Supported)
		case algTypeKeySchedule:
			s.KeySchedule = KeySchedule(a.Supported)
		}
	}
	*out = s
	return true
}

func (m *capabilitiesRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseCapabilities), 0, 0}.append(wire.NewBuilder(nil)).
		AddU8(0).AddU8(m.CTExponent).AddU16(0).AddU32(m.Flags)
	if m.Version >= Version12 {
		b.AddU32(m.DataTransferSize).AddU32(m.MaxSPDMmsgSize)
	}
	if m.Version >= Version13 && m.Supported != nil {
		m.Supported.append(b)
	}
	return b.Bytes()
}

// decodeCapabilitiesRsp decodes CAPABILITIES, with the 1.3
// supported-algorithms block when one follows (the caller checks it asked).
func decodeCapabilitiesRsp(b []byte) (*capabilitiesRsp, error) {
	d, h, m := newDecoder("CAPABILITIES", b), hdr{}, &capabilitiesRsp{raw: b}
	ok := d.header(&h, uint8(ResponseCapabilities)) &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.mbz(1, "Reserved") && d.u8(&m.CTExponent, "CTExponent") && d.mbz(2, "Reserved") && d.u32(&m.Flags, "Flags") &&
		d.check(m.Flags&CapMeasMask != CapMeasMask, "Flags", "MEAS_CAP 11b is reserved") &&
		d.check(m.Flags&CapPSKMask != CapPSKMask, "Flags", "PSK_CAP 11b is reserved") &&
		d.check(m.Flags&CapEPInfoMask != CapEPInfoMask, "Flags", "EP_INFO_CAP 11b is reserved") &&
		d.check(m.Flags&CapMultiKeyMask != CapMultiKeyMask, "Flags", "MULTI_KEY_CAP 11b is reserved")
	m.Version = h.Version
	if ok && h.Version >= Version12 {
		ok = d.transferSizes(&m.DataTransferSize, &m.MaxSPDMmsgSize)
	}
	if ok && h.Version >= Version13 && !d.s.Empty() {
		ok = d.supportedAlgs(&m.Supported)
	}
	if !ok || !d.end() {
		return nil, d.err()
	}
	return m, nil
}

// ---- NEGOTIATE_ALGORITHMS / ALGORITHMS. DSP0274 1.3 §10.5 ----

// algStruct is one ReqAlgStruct/RespAlgStruct entry (1.1+).
type algStruct struct {
	Type      uint8
	Supported uint16
	Ext       []uint32
}

func appendAlgStructs(b *wire.Builder, algs []algStruct) {
	for _, a := range algs {
		b.AddU8(a.Type).AddU8(0x20 | uint8(len(a.Ext))).AddU16(a.Supported)
		for _, e := range a.Ext {
			b.AddU32(e)
		}
	}
}

// algStructs reads n AlgStruct entries: types strictly increasing within
// 2..5 (later types unknown to 1.3 are rejected), fixed count 2, at most
// maxExt external algorithms each.
func (d *decoder) algStructs(out *[]algStruct, n int, maxExt int) bool {
	prev := uint8(0)
	for i := 0; i < n; i++ {
		var a algStruct
		var cnt uint8
		if !(d.u8(&a.Type, "AlgType") &&
			d.check(a.Type >= algTypeDHE && a.Type <= algTypeKeySchedule && a.Type > prev, "AlgType", "unknown, duplicate or out of order") &&
			d.u8(&cnt, "AlgCount") && d.check(cnt>>4 == 2, "AlgCount", "fixed algorithm byte count is not 2") &&
			d.check(int(cnt&0xF) <= maxExt, "AlgCount", "too many external algorithms") &&
			d.u16(&a.Supported, "AlgSupported") &&
			(cnt&0xF == 0 || wire.ReadU32s(&d.s, &a.Ext, int(cnt&0xF)) || d.fail("AlgExternal", "short message"))) {
			return false
		}
		prev = a.Type
		*out = append(*out, a)
	}
	return true
}

type negotiateAlgorithmsReq struct {
	Version     Version
	MeasSpec    uint8
	OtherParams uint8 // 1.2+
	BaseAsym    AsymAlgo
	BaseHash    HashAlgo
	MELSpec     uint8 // 1.3
	ExtAsym     []uint32
	ExtHash     []uint32
	Algs        []algStruct // 1.1+
	raw         []byte
}

func (m *negotiateAlgorithmsReq) marshal() []byte {
	b := hdr{m.Version, uint8(RequestNegotiateAlgorithms), uint8(len(m.Algs)), 0}.append(wire.NewBuilder(nil)).
		AddU16(0).AddU8(m.MeasSpec).AddU8(m.OtherParams).AddU32(uint32(m.BaseAsym)).AddU32(uint32(m.BaseHash)).
		AddZeros(12).AddU8(uint8(len(m.ExtAsym))).AddU8(uint8(len(m.ExtHash))).AddU8(0).AddU8(m.MELSpec)
	for _, e := range m.ExtAsym {
		b.AddU32(e)
	}
	for _, e := range m.ExtHash {
		b.AddU32(e)
	}
	appendAlgStructs(b, m.Algs)
	b.SetU16At(4, uint16(b.Len()))
	return b.Bytes()
}

func decodeNegotiateAlgorithmsReq(b []byte) (*negotiateAlgorithmsReq, error) {
	d, h, m := newDecoder("NEGOTIATE_ALGORITHMS", b), hdr{}, &negotiateAlgorithmsReq{raw: b}
	var length uint16
	var asym, hash uint32
	var nAsym, nHash uint8
	ok := d.header(&h, uint8(RequestNegotiateAlgorithms)) &&
		d.check(h.Version >= Version11 || h.Param1 == 0, "Param1", "AlgStruct tables before 1.1") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.u16(&length, "Length") && d.check(int(length) == len(b), "Length", "does not match message size") &&
		d.check(length <= maxAlgRequestLen && (h.Version >= Version11 || length <= maxAlgRequestLen10), "Length", "too long") &&
		d.u8(&m.MeasSpec, "MeasurementSpecification") && d.u8(&m.OtherParams, "OtherParamsSupport") &&
		d.check(h.Version >= Version12 || m.OtherParams == 0, "OtherParamsSupport", "reserved before 1.2") &&
		d.u32(&asym, "BaseAsymAlgo") && d.u32(&hash, "BaseHashAlgo") && d.mbz(12, "Reserved") &&
		d.u8(&nAsym, "ExtAsymCount") && d.u8(&nHash, "ExtHashCount") &&
		d.check(int(nAsym)+int(nHash) <= maxExtAlgCount, "ExtAsymCount", "too many external algorithms") &&
		d.mbz(1, "Reserved") && d.u8(&m.MELSpec, "MELspecification") &&
		d.check(h.Version >= Version13 || m.MELSpec == 0, "MELspecification", "reserved before 1.3") &&
		(nAsym == 0 || wire.ReadU32s(&d.s, &m.ExtAsym, int(nAsym)) || d.fail("ExtAsym", "short message")) &&
		(nHash == 0 || wire.ReadU32s(&d.s, &m.ExtHash, int(nHash)) || d.fail("ExtHash", "short message")) &&
		d.algStructs(&m.Algs, int(h.Param1), 15) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.BaseAsym, m.BaseHash = h.Version, AsymAlgo(asym), HashAlgo(hash)
	return m, nil
}

type algorithmsRsp struct {
	Version        Version
	MeasSpecSel    uint8
	OtherParamsSel uint8
	MeasHash       MeasHashAlgo
	BaseAsym       AsymAlgo
	BaseHash       HashAlgo
	MELSpecSel     uint8
	ExtAsymSel     []uint32
	ExtHashSel     []uint32
	Algs           []algStruct
	raw            []byte
}

func (m *algorithmsRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseAlgorithms), uint8(len(m.Algs)), 0}.append(wire.NewBuilder(nil)).
		AddU16(0).AddU8(m.MeasSpecSel).AddU8(m.OtherParamsSel).AddU32(uint32(m.MeasHash)).
		AddU32(uint32(m.BaseAsym)).AddU32(uint32(m.BaseHash)).AddZeros(11).AddU8(m.MELSpecSel).
		AddU8(uint8(len(m.ExtAsymSel))).AddU8(uint8(len(m.ExtHashSel))).AddU16(0)
	for _, e := range m.ExtAsymSel {
		b.AddU32(e)
	}
	for _, e := range m.ExtHashSel {
		b.AddU32(e)
	}
	appendAlgStructs(b, m.Algs)
	b.SetU16At(4, uint16(b.Len()))
	return b.Bytes()
}

func decodeAlgorithmsRsp(b []byte) (*algorithmsRsp, error) {
	d, h, m := newDecoder("ALGORITHMS", b), hdr{}, &algorithmsRsp{raw: b}
	var length uint16
	var mh, asym, hash uint32
	var nAsym, nHash uint8
	ok := d.header(&h, uint8(ResponseAlgorithms)) &&
		d.check(h.Version >= Version11 || h.Param1 == 0, "Param1", "AlgStruct tables before 1.1") &&
		d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.u16(&length, "Length") && d.check(int(length) == len(b), "Length", "does not match message size") &&
		d.u8(&m.MeasSpecSel, "MeasurementSpecificationSel") && d.u8(&m.OtherParamsSel, "OtherParamsSelection") &&
		d.check(h.Version >= Version12 || m.OtherParamsSel == 0, "OtherParamsSelection", "reserved before 1.2") &&
		d.u32(&mh, "MeasurementHashAlgo") && d.u32(&asym, "BaseAsymSel") && d.u32(&hash, "BaseHashSel") &&
		d.mbz(11, "Reserved") && d.u8(&m.MELSpecSel, "MELspecificationSel") &&
		d.check(h.Version >= Version13 || m.MELSpecSel == 0, "MELspecificationSel", "reserved before 1.3") &&
		d.u8(&nAsym, "ExtAsymSelCount") && d.check(nAsym <= 1, "ExtAsymSelCount", "more than one") &&
		d.u8(&nHash, "ExtHashSelCount") && d.check(nHash <= 1, "ExtHashSelCount", "more than one") &&
		d.mbz(2, "Reserved") &&
		(nAsym == 0 || wire.ReadU32s(&d.s, &m.ExtAsymSel, int(nAsym)) || d.fail("ExtAsymSel", "short message")) &&
		(nHash == 0 || wire.ReadU32s(&d.s, &m.ExtHashSel, int(nHash)) || d.fail("ExtHashSel", "short message")) &&
		d.algStructs(&m.Algs, int(h.Param1), 1) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.MeasHash, m.BaseAsym, m.BaseHash = h.Version, MeasHashAlgo(mh), AsymAlgo(asym), HashAlgo(hash)
	return m, nil
}
