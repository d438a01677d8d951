package spdm

// Authentication messages: certificates, CHALLENGE and measurements
// (DSP0274 1.3 §10.6–10.8, §10.11). VCA and the shared sizes are in
// messages.go; sessions in session_msgs.go.

import (
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

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
