package spdm

// Messages that carry or deliver others: ERROR and RESPOND_IF_READY,
// the CHUNK_* large-message transfer (1.2+) and VENDOR_DEFINED
// (DSP0274 1.3 §10.10, §10.13, §10.15–10.17).

import (
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

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
