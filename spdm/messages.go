package spdm

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

// ---- GET_DIGESTS / DIGESTS. DSP0274 1.3 §10.6 ----

type getDigestsReq struct {
	Version Version
	raw     []byte
}

func (m *getDigestsReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestGetDigests), 0, 0}.append(wire.NewBuilder(nil)).Bytes()
}

func decodeGetDigestsReq(b []byte) (*getDigestsReq, error) {
	d, h := newDecoder("GET_DIGESTS", b), hdr{}
	ok := d.header(&h, uint8(RequestGetDigests)) &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") && d.check(h.Param2 == 0, "Param2", "reserved not zero") && d.end()
	if !ok {
		return nil, d.err()
	}
	return &getDigestsReq{Version: h.Version, raw: b}, nil
}

type digestsRsp struct {
	Version       Version
	SupportedMask uint8 // 1.3 (Param1)
	SlotMask      uint8 // ProvisionedSlotMask (Param2)
	Digests       [][]byte
	// Multi-key connections (1.3), one per digest.
	KeyPairID    []uint8
	CertInfo     []uint8
	KeyUsageMask []uint16
	raw          []byte
}

func (m *digestsRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseDigests), m.SupportedMask, m.SlotMask}.append(wire.NewBuilder(nil))
	for _, dg := range m.Digests {
		b.AddBytes(dg)
	}
	if m.KeyPairID != nil {
		b.AddBytes(m.KeyPairID).AddBytes(m.CertInfo)
		for _, u := range m.KeyUsageMask {
			b.AddU16(u)
		}
	}
	return b.Bytes()
}

// decodeDigestsRsp needs the negotiated hash size and whether the connection
// is multi-key (1.3 OtherParamsSelection MultiKeyConn).
func decodeDigestsRsp(b []byte, hashSize int, multiKey bool) (*digestsRsp, error) {
	d, h, m := newDecoder("DIGESTS", b), hdr{}, &digestsRsp{raw: b}
	ok := d.header(&h, uint8(ResponseDigests)) &&
		d.check(h.Version >= Version13 || h.Param1 == 0, "Param1", "reserved before 1.3") &&
		d.check(h.Param1 == 0 || h.Param2&^h.Param1 == 0, "Param2", "provisioned slot not in supported mask") &&
		d.check(!multiKey || h.Version >= Version13, "Param2", "multi-key before 1.3")
	m.Version, m.SupportedMask, m.SlotMask = h.Version, h.Param1, h.Param2
	n := popcount8(h.Param2)
	for i := 0; ok && i < n; i++ {
		var dg []byte
		ok = d.bytes(&dg, hashSize, "Digest")
		m.Digests = append(m.Digests, dg)
	}
	if ok && multiKey {
		var kp, ci []byte
		ok = d.bytes(&kp, n, "KeyPairID") && d.bytes(&ci, n, "CertificateInfo") &&
			(n == 0 || wire.ReadU16s(&d.s, &m.KeyUsageMask, n) || d.fail("KeyUsageMask", "short message"))
		m.KeyPairID, m.CertInfo = kp, ci
		for i := 0; ok && i < len(ci); i++ {
			ok = d.check(ci[i]&0xF8 == 0, "CertificateInfo", "reserved bits set")
		}
	}
	if !ok || !d.end() {
		return nil, d.err()
	}
	return m, nil
}

// ---- GET_CERTIFICATE / CERTIFICATE. DSP0274 1.3 §10.7 ----

type getCertificateReq struct {
	Version Version
	Slot    uint8
	Param2  uint8 // 1.3: bit 0 SlotSizeRequested
	Offset  uint16
	Length  uint16
	raw     []byte
}

func (m *getCertificateReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestGetCertificate), m.Slot, m.Param2}.append(wire.NewBuilder(nil)).
		AddU16(m.Offset).AddU16(m.Length).Bytes()
}

func decodeGetCertificateReq(b []byte) (*getCertificateReq, error) {
	d, h, m := newDecoder("GET_CERTIFICATE", b), hdr{}, &getCertificateReq{raw: b}
	ok := d.header(&h, uint8(RequestGetCertificate)) &&
		d.check(h.Param1 < maxSlots, "Param1", "slot out of range or reserved bits set") &&
		d.check(h.Param2 == 0 || (h.Version >= Version13 && h.Param2 == 1), "Param2", "reserved bits set") &&
		d.u16(&m.Offset, "Offset") && d.u16(&m.Length, "Length") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Slot, m.Param2 = h.Version, h.Param1, h.Param2
	return m, nil
}

type certificateRsp struct {
	Version   Version
	Slot      uint8
	CertInfo  uint8 // 1.3 Param2 [2:0]
	Portion   []byte
	Remainder uint16
	raw       []byte
}

func (m *certificateRsp) marshal() []byte {
	return hdr{m.Version, uint8(ResponseCertificate), m.Slot, m.CertInfo}.append(wire.NewBuilder(nil)).
		AddU16(uint16(len(m.Portion))).AddU16(m.Remainder).AddBytes(m.Portion).Bytes()
}

func decodeCertificateRsp(b []byte) (*certificateRsp, error) {
	d, h, m := newDecoder("CERTIFICATE", b), hdr{}, &certificateRsp{raw: b}
	var portion uint16
	ok := d.header(&h, uint8(ResponseCertificate)) &&
		d.check(h.Param1 < maxSlots, "Param1", "slot out of range or reserved bits set") &&
		d.check(h.Param2 == 0 || (h.Version >= Version13 && h.Param2&0xF8 == 0), "Param2", "reserved bits set") &&
		d.u16(&portion, "PortionLength") && d.u16(&m.Remainder, "RemainderLength") &&
		d.bytes(&m.Portion, int(portion), "CertChain") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Slot, m.CertInfo = h.Version, h.Param1, h.Param2
	return m, nil
}

// ---- CHALLENGE / CHALLENGE_AUTH. DSP0274 1.3 §10.8 ----

// Measurement summary hash types (CHALLENGE Param2, KEY_EXCHANGE Param1).
const (
	SummaryNone uint8 = 0x00
	SummaryTCB  uint8 = 0x01
	SummaryAll  uint8 = 0xFF
)

type challengeReq struct {
	Version     Version
	Slot        uint8
	SummaryType uint8
	Nonce       [nonceLen]byte
	Context     [requesterContextLen]byte // 1.3+
	raw         []byte
}

func (m *challengeReq) marshal() []byte {
	b := hdr{m.Version, uint8(RequestChallenge), m.Slot, m.SummaryType}.append(wire.NewBuilder(nil)).AddBytes(m.Nonce[:])
	if m.Version >= Version13 {
		b.AddBytes(m.Context[:])
	}
	return b.Bytes()
}

func validSummaryType(t uint8) bool { return t == SummaryNone || t == SummaryTCB || t == SummaryAll }

func decodeChallengeReq(b []byte) (*challengeReq, error) {
	d, h, m := newDecoder("CHALLENGE", b), hdr{}, &challengeReq{raw: b}
	ok := d.header(&h, uint8(RequestChallenge)) &&
		d.check(h.Param1 < maxSlots || h.Param1 == 0xFF, "Param1", "slot out of range") &&
		d.check(validSummaryType(h.Param2), "Param2", "unknown measurement summary hash type") &&
		d.fixed(m.Nonce[:], "Nonce") && (h.Version < Version13 || d.fixed(m.Context[:], "RequesterContext")) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Slot, m.SummaryType = h.Version, h.Param1, h.Param2
	return m, nil
}

type challengeAuthRsp struct {
	Version       Version
	Param1        uint8 // [3:0] slot, bit 7 BasicMutAuthReq (1.1)
	SlotMask      uint8
	CertChainHash []byte
	Nonce         [nonceLen]byte
	SummaryHash   []byte // absent when the request's summary type was 0
	Opaque        []byte
	Context       [requesterContextLen]byte // 1.3+
	Signature     []byte
	raw           []byte
}

func (m *challengeAuthRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseChallengeAuth), m.Param1, m.SlotMask}.append(wire.NewBuilder(nil)).
		AddBytes(m.CertChainHash).AddBytes(m.Nonce[:]).AddBytes(m.SummaryHash).
		AddU16(uint16(len(m.Opaque))).AddBytes(m.Opaque)
	if m.Version >= Version13 {
		b.AddBytes(m.Context[:])
	}
	return b.AddBytes(m.Signature).Bytes()
}

// unsigned is the message without its signature (the end of M1/M2).
func (m *challengeAuthRsp) unsigned() []byte { return m.raw[:len(m.raw)-len(m.Signature)] }

// decodeChallengeAuthRsp needs the hash size H, signature size S and whether
// a measurement summary hash was requested.
func decodeChallengeAuthRsp(b []byte, hashSize, sigSize int, summary bool) (*challengeAuthRsp, error) {
	d, h, m := newDecoder("CHALLENGE_AUTH", b), hdr{}, &challengeAuthRsp{raw: b}
	var opaqueLen uint16
	ok := d.header(&h, uint8(ResponseChallengeAuth)) &&
		d.check(h.Param1&0x70 == 0, "Param1", "reserved bits set") &&
		d.bytes(&m.CertChainHash, hashSize, "CertChainHash") && d.fixed(m.Nonce[:], "Nonce") &&
		(!summary || d.bytes(&m.SummaryHash, hashSize, "MeasurementSummaryHash")) &&
		d.u16(&opaqueLen, "OpaqueDataLength") && d.check(opaqueLen <= maxOpaqueLen, "OpaqueDataLength", "over 1024") &&
		d.bytes(&m.Opaque, int(opaqueLen), "OpaqueData") &&
		(h.Version < Version13 || d.fixed(m.Context[:], "RequesterContext")) &&
		d.bytes(&m.Signature, sigSize, "Signature") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Param1, m.SlotMask = h.Version, h.Param1, h.Param2
	return m, nil
}

// ---- GET_MEASUREMENTS / MEASUREMENTS. DSP0274 1.3 §10.11 ----

// GET_MEASUREMENTS attributes (Param1).
const (
	MeasAttrSignature    uint8 = 1 << 0
	MeasAttrRawBitStream uint8 = 1 << 1 // 1.2+
	MeasAttrNewMeas      uint8 = 1 << 2 // 1.3+
)

// Measurement operations (Param2).
const (
	MeasOpCount uint8 = 0x00
	MeasOpAll   uint8 = 0xFF
)

type getMeasurementsReq struct {
	Version   Version
	Attrs     uint8
	Op        uint8
	Nonce     [nonceLen]byte // when signed
	SlotParam uint8          // when signed, 1.1+
	Context   [requesterContextLen]byte
	raw       []byte
}

func (m *getMeasurementsReq) signed() bool { return m.Attrs&MeasAttrSignature != 0 }

func (m *getMeasurementsReq) marshal() []byte {
	b := hdr{m.Version, uint8(RequestGetMeasurements), m.Attrs, m.Op}.append(wire.NewBuilder(nil))
	if m.signed() {
		b.AddBytes(m.Nonce[:])
		if m.Version >= Version11 {
			b.AddU8(m.SlotParam)
		}
	}
	if m.Version >= Version13 {
		b.AddBytes(m.Context[:])
	}
	return b.Bytes()
}

func measAttrMask(v Version) uint8 {
	switch {
	case v >= Version13:
		return MeasAttrSignature | MeasAttrRawBitStream | MeasAttrNewMeas
	case v >= Version12:
		return MeasAttrSignature | MeasAttrRawBitStream
	}
	return MeasAttrSignature
}

func decodeGetMeasurementsReq(b []byte) (*getMeasurementsReq, error) {
	d, h, m := newDecoder("GET_MEASUREMENTS", b), hdr{}, &getMeasurementsReq{raw: b}
	ok := d.header(&h, uint8(RequestGetMeasurements)) &&
		d.check(h.Param1&^measAttrMask(h.Version) == 0, "Param1", "reserved attribute bits set")
	m.Version, m.Attrs, m.Op = h.Version, h.Param1, h.Param2
	if ok && m.signed() {
		ok = d.fixed(m.Nonce[:], "Nonce") && (h.Version < Version11 || (d.u8(&m.SlotParam, "SlotIDParam") &&
			d.check(m.SlotParam < maxSlots || m.SlotParam == 0xF, "SlotIDParam", "slot out of range or reserved bits set")))
	}
	if ok && h.Version >= Version13 {
		ok = d.fixed(m.Context[:], "RequesterContext")
	}
	if !ok || !d.end() {
		return nil, d.err()
	}
	return m, nil
}

type measurementsRsp struct {
	Version   Version
	Param1    uint8 // op 0: total number of indices
	Param2    uint8 // [3:0] slot, [5:4] content changed (1.2+)
	NumBlocks uint8
	Record    []byte
	Blocks    []MeasurementBlock
	Nonce     [nonceLen]byte // always in 1.1+; in 1.0 always sent, accepted absent when unsigned
	Opaque    []byte
	Context   [requesterContextLen]byte // 1.3+
	Signature []byte
	hasNonce  bool
	raw       []byte
}

func (m *measurementsRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseMeasurements), m.Param1, m.Param2}.append(wire.NewBuilder(nil)).
		AddU8(m.NumBlocks).AddU24(uint32(len(m.Record))).AddBytes(m.Record)
	if m.hasNonce || m.Version >= Version11 {
		b.AddBytes(m.Nonce[:])
	}
	b.AddU16(uint16(len(m.Opaque))).AddBytes(m.Opaque)
	if m.Version >= Version13 {
		b.AddBytes(m.Context[:])
	}
	return b.AddBytes(m.Signature).Bytes()
}

func (m *measurementsRsp) unsigned() []byte { return m.raw[:len(m.raw)-len(m.Signature)] }

// decodeMeasurementsRsp needs the operation asked (op 0 returns a count) and
// the signature size (0 when no signature was requested).
func decodeMeasurementsRsp(b []byte, op uint8, sigSize int) (*measurementsRsp, error) {
	d, h, m := newDecoder("MEASUREMENTS", b), hdr{}, &measurementsRsp{raw: b}
	var recLen uint32
	var opaqueLen uint16
	ok := d.header(&h, uint8(ResponseMeasurements)) &&
		d.check(op == MeasOpCount || h.Param1 == 0, "Param1", "reserved not zero") &&
		d.check(h.Param2&0xC0 == 0 && (h.Version >= Version12 || h.Param2&0x30 == 0), "Param2", "reserved bits set") &&
		d.check(h.Param2&0x30 != 0x30, "Param2", "content-changed value 11b is reserved") &&
		d.u8(&m.NumBlocks, "NumberOfBlocks") && d.u24(&recLen, "MeasurementRecordLength") &&
		d.check(op != MeasOpCount || (m.NumBlocks == 0 && recLen == 0), "NumberOfBlocks", "blocks in a count response") &&
		d.bytes(&m.Record, int(recLen), "MeasurementRecord")
	m.Version, m.Param1, m.Param2 = h.Version, h.Param1, h.Param2
	if ok {
		recOff := d.off() - int(recLen)
		blocks, err := parseMeasurementRecord(m.Record, int(m.NumBlocks))
		if err != nil {
			err.Msg, err.Offset = "MEASUREMENTS", err.Offset+recOff
			return nil, err
		}
		m.Blocks = blocks
		m.hasNonce = h.Version >= Version11 || sigSize > 0
		if !m.hasNonce {
			// 1.0 unsigned: DSP0274 1.0.0 carries the nonce only with a
			// signature, but DMTF's libspdm (and its validator) always
			// send it. Take it when the rest is exactly Nonce ‖
			// OpaqueDataLength ‖ OpaqueData.
			rest := d.s
			m.hasNonce = len(rest) >= nonceLen+2 && len(rest) == nonceLen+2+int(rest[nonceLen])|int(rest[nonceLen+1])<<8
		}
		ok = (!m.hasNonce || d.fixed(m.Nonce[:], "Nonce")) &&
			d.u16(&opaqueLen, "OpaqueDataLength") && d.check(opaqueLen <= maxOpaqueLen, "OpaqueDataLength", "over 1024") &&
			d.bytes(&m.Opaque, int(opaqueLen), "OpaqueData") &&
			(h.Version < Version13 || d.fixed(m.Context[:], "RequesterContext")) &&
			(sigSize == 0 || d.bytes(&m.Signature, sigSize, "Signature")) && d.end()
	}
	if !ok {
		return nil, d.err()
	}
	return m, nil
}

// ---- ERROR / RESPOND_IF_READY. DSP0274 1.3 §10.10, §10.13 ----

type errorRsp struct {
	Version Version
	Code    ErrorCode
	Data    uint8
	Ext     []byte
	// ResponseNotReady extended data.
	RDExponent, ReqCode, Token, RDTM uint8
	raw                              []byte
}

func (m *errorRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseError), uint8(m.Code), m.Data}.append(wire.NewBuilder(nil))
	switch m.Code {
	case ErrorCodeResponseNotReady:
		b.AddU8(m.RDExponent).AddU8(m.ReqCode).AddU8(m.Token).AddU8(m.RDTM)
	default:
		b.AddBytes(m.Ext)
	}
	return b.Bytes()
}

// errorExtLen is the fixed extended-data length of a code, or -1 when it is
// variable (vendor-defined and codes this package does not know; up to 32 bytes).
func errorExtLen(c ErrorCode) int {
	switch c {
	case ErrorCodeResponseNotReady:
		return 4
	case ErrorCodeLargeResponse:
		return 1
	case ErrorCodeVendorDefined:
		return -1
	}
	if _, known := errorCodeNames[c]; known {
		return 0
	}
	return -1
}

// decodeErrorRsp decodes ERROR. ResponseNotReady carries exactly 4 bytes,
// LargeResponse 1 (the handle), other known codes none; vendor-defined and
// unknown codes keep up to 32 bytes of extended data as is (so for those a
// proper prefix can also decode: their length is not in any field).
func decodeErrorRsp(b []byte) (*errorRsp, error) {
	d, h, m := newDecoder("ERROR", b), hdr{}, &errorRsp{raw: b}
	ok := d.header(&h, uint8(ResponseError))
	m.Version, m.Code, m.Data = h.Version, ErrorCode(h.Param1), h.Param2
	if ok {
		switch n := errorExtLen(m.Code); {
		case n < 0:
			ok = d.check(d.s.Len() <= maxErrorExtLen, "ExtendedErrorData", "over 32 bytes") && d.bytes(&m.Ext, d.s.Len(), "ExtendedErrorData")
		case m.Code == ErrorCodeResponseNotReady:
			ok = d.u8(&m.RDExponent, "RDExponent") && d.u8(&m.ReqCode, "RequestCode") && d.u8(&m.Token, "Token") && d.u8(&m.RDTM, "RDTM")
			m.Ext = b[hdrLen:min(len(b), hdrLen+4)]
		default:
			ok = d.bytes(&m.Ext, n, "ExtendedErrorData")
			if n == 0 {
				m.Ext = nil
			}
		}
	}
	if !ok || !d.end() {
		return nil, d.err()
	}
	return m, nil
}

type respondIfReadyReq struct {
	Version Version
	ReqCode uint8
	Token   uint8
	raw     []byte
}

func (m *respondIfReadyReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestRespondIfReady), m.ReqCode, m.Token}.append(wire.NewBuilder(nil)).Bytes()
}

func decodeRespondIfReadyReq(b []byte) (*respondIfReadyReq, error) {
	d, h := newDecoder("RESPOND_IF_READY", b), hdr{}
	if !(d.header(&h, uint8(RequestRespondIfReady)) && d.end()) {
		return nil, d.err()
	}
	return &respondIfReadyReq{Version: h.Version, ReqCode: h.Param1, Token: h.Param2, raw: b}, nil
}

// ---- CHUNK_SEND / CHUNK_SEND_ACK / CHUNK_GET / CHUNK_RESPONSE (1.2+). DSP0274 1.3 §10.16–17 ----

type chunkSendReq struct {
	Version   Version
	Last      bool
	Handle    uint8
	Seq       uint16
	LargeSize uint32 // seq 0 only: size of the whole large message
	Chunk     []byte
	raw       []byte
}

func boolBit(v bool) uint8 {
	if v {
		return 1
	}
	return 0
}

func (m *chunkSendReq) marshal() []byte {
	b := hdr{m.Version, uint8(RequestChunkSend), boolBit(m.Last), m.Handle}.append(wire.NewBuilder(nil)).
		AddU16(m.Seq).AddU16(0).AddU32(uint32(len(m.Chunk)))
	if m.Seq == 0 {
		b.AddU32(m.LargeSize)
	}
	return b.AddBytes(m.Chunk).Bytes()
}

// chunk reads ChunkSeqNo, Reserved, ChunkSize, [LargeMessageSize], Chunk.
func (d *decoder) chunk(seq *uint16, large *uint32, chunk *[]byte) bool {
	var size uint32
	return d.u16(seq, "ChunkSeqNo") && d.mbz(2, "Reserved") && d.u32(&size, "ChunkSize") &&
		d.check(size > 0, "ChunkSize", "zero") &&
		(*seq != 0 || (d.u32(large, "LargeMessageSize") && d.check(*large > size, "LargeMessageSize", "not larger than the first chunk"))) &&
		d.check(int64(size) <= int64(d.s.Len()), "ChunkSize", "beyond message") && d.bytes(chunk, int(size), "Chunk")
}

func decodeChunkSendReq(b []byte) (*chunkSendReq, error) {
	d, h, m := newDecoder("CHUNK_SEND", b), hdr{}, &chunkSendReq{raw: b}
	ok := d.header(&h, uint8(RequestChunkSend)) && d.check(h.Version >= Version12, "SPDMVersion", "chunking before 1.2") &&
		d.check(h.Param1&^1 == 0, "Param1", "reserved bits set") &&
		d.chunk(&m.Seq, &m.LargeSize, &m.Chunk) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Last, m.Handle = h.Version, h.Param1&1 != 0, h.Param2
	return m, nil
}

type chunkSendAckRsp struct {
	Version    Version
	EarlyError bool
	Handle     uint8
	Seq        uint16
	Response   []byte // after the last chunk, or the ERROR when EarlyError
	raw        []byte
}

func (m *chunkSendAckRsp) marshal() []byte {
	return hdr{m.Version, uint8(ResponseChunkSendAck), boolBit(m.EarlyError), m.Handle}.append(wire.NewBuilder(nil)).
		AddU16(m.Seq).AddBytes(m.Response).Bytes()
}

// decodeChunkSendAckRsp keeps the embedded response whole (its length is
// the rest of the message, so prefixes of it decode too).
func decodeChunkSendAckRsp(b []byte) (*chunkSendAckRsp, error) {
	d, h, m := newDecoder("CHUNK_SEND_ACK", b), hdr{}, &chunkSendAckRsp{raw: b}
	ok := d.header(&h, uint8(ResponseChunkSendAck)) && d.check(h.Version >= Version12, "SPDMVersion", "chunking before 1.2") &&
		d.check(h.Param1&^1 == 0, "Param1", "reserved bits set") &&
		d.u16(&m.Seq, "ChunkSeqNo") && d.bytes(&m.Response, d.s.Len(), "Response") &&
		d.check(!(h.Param1&1 != 0 && len(m.Response) == 0), "Response", "early error without ERROR message")
	if !ok {
		return nil, d.err()
	}
	if len(m.Response) == 0 {
		m.Response = nil
	}
	m.Version, m.EarlyError, m.Handle = h.Version, h.Param1&1 != 0, h.Param2
	return m, nil
}

type chunkGetReq struct {
	Version Version
	Handle  uint8
	Seq     uint16
	raw     []byte
}

func (m *chunkGetReq) marshal() []byte {
	return hdr{m.Version, uint8(RequestChunkGet), 0, m.Handle}.append(wire.NewBuilder(nil)).AddU16(m.Seq).Bytes()
}

func decodeChunkGetReq(b []byte) (*chunkGetReq, error) {
	d, h, m := newDecoder("CHUNK_GET", b), hdr{}, &chunkGetReq{raw: b}
	ok := d.header(&h, uint8(RequestChunkGet)) && d.check(h.Version >= Version12, "SPDMVersion", "chunking before 1.2") &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") && d.u16(&m.Seq, "ChunkSeqNo") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Handle = h.Version, h.Param2
	return m, nil
}

type chunkResponseRsp struct {
	Version   Version
	Last      bool
	Handle    uint8
	Seq       uint16
	LargeSize uint32
	Chunk     []byte
	raw       []byte
}

func (m *chunkResponseRsp) marshal() []byte {
	b := hdr{m.Version, uint8(ResponseChunkResponse), boolBit(m.Last), m.Handle}.append(wire.NewBuilder(nil)).
		AddU16(m.Seq).AddU16(0).AddU32(uint32(len(m.Chunk)))
	if m.Seq == 0 {
		b.AddU32(m.LargeSize)
	}
	return b.AddBytes(m.Chunk).Bytes()
}

func decodeChunkResponseRsp(b []byte) (*chunkResponseRsp, error) {
	d, h, m := newDecoder("CHUNK_RESPONSE", b), hdr{}, &chunkResponseRsp{raw: b}
	ok := d.header(&h, uint8(ResponseChunkResponse)) && d.check(h.Version >= Version12, "SPDMVersion", "chunking before 1.2") &&
		d.check(h.Param1&^1 == 0, "Param1", "reserved bits set") &&
		d.chunk(&m.Seq, &m.LargeSize, &m.Chunk) && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version, m.Last, m.Handle = h.Version, h.Param1&1 != 0, h.Param2
	return m, nil
}

// ---- VENDOR_DEFINED_REQUEST / VENDOR_DEFINED_RESPONSE. DSP0274 1.3 §10.15 ----

// vendorDefined is both VENDOR_DEFINED_REQUEST and _RESPONSE (same layout).
type vendorDefined struct {
	Version    Version
	StandardID uint16
	VendorID   []byte
	Payload    []byte
	raw        []byte
}

func (m *vendorDefined) marshal(code uint8) []byte {
	return hdr{m.Version, code, 0, 0}.append(wire.NewBuilder(nil)).AddU16(m.StandardID).
		AddU8(uint8(len(m.VendorID))).AddBytes(m.VendorID).AddU16(uint16(len(m.Payload))).AddBytes(m.Payload).Bytes()
}

func (m *vendorDefined) marshalRequest() []byte  { return m.marshal(uint8(RequestVendorDefined)) }
func (m *vendorDefined) marshalResponse() []byte { return m.marshal(uint8(ResponseVendorDefined)) }

func decodeVendorDefined(name string, code uint8, b []byte) (*vendorDefined, error) {
	d, h, m := newDecoder(name, b), hdr{}, &vendorDefined{raw: b}
	var vlen uint8
	var plen uint16
	ok := d.header(&h, code) &&
		d.check(h.Param1 == 0, "Param1", "reserved not zero") && d.check(h.Param2 == 0, "Param2", "reserved not zero") &&
		d.u16(&m.StandardID, "StandardID") && d.u8(&vlen, "Len") && d.bytes(&m.VendorID, int(vlen), "VendorID") &&
		d.u16(&plen, "ReqLength") && d.bytes(&m.Payload, int(plen), "VendorDefinedPayload") && d.end()
	if !ok {
		return nil, d.err()
	}
	m.Version = h.Version
	return m, nil
}

func decodeVendorDefinedReq(b []byte) (*vendorDefined, error) {
	return decodeVendorDefined("VENDOR_DEFINED_REQUEST", uint8(RequestVendorDefined), b)
}

func decodeVendorDefinedRsp(b []byte) (*vendorDefined, error) {
	return decodeVendorDefined("VENDOR_DEFINED_RESPONSE", uint8(ResponseVendorDefined), b)
}
