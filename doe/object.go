package doe

import (
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Data object header (PCIe r6.0 §6.30.1, SPEC-FACTS §1.2): DW0 = Vendor ID
// [15:0], Data Object Type [23:16]; DW1 = Length in DW including the header
// [17:0], where 0 means 2^18 DW. Reserved bits are written as zero and
// ignored on receipt.
const (
	// HeaderSize is the size of the data object header in bytes.
	HeaderSize = 8
	// MaxObjectDW is the largest data object, header included, in DW.
	MaxObjectDW = 1 << 18
	// MaxPayload is the largest payload of one object in bytes (Linux
	// PCI_DOE_MAX_PAYLOAD).
	MaxPayload = (MaxObjectDW - 2) * 4

	lengthMask = 0x3FFFF
)

// headerDWs returns the two header DWs of an object of lenDW DWs.
func headerDWs(f Feature, lenDW int) (uint32, uint32) {
	return uint32(f.Vendor) | uint32(f.Type)<<16, uint32(lenDW) & lengthMask
}

// decodeHeader splits header DWs into the feature and the object length in DW
// (2..2^18).
func decodeHeader(dw0, dw1 uint32) (Feature, int, error) {
	f := Feature{Vendor: uint16(dw0), Type: uint8(dw0 >> 16)}
	n := int(dw1 & lengthMask)
	if n == 0 {
		n = MaxObjectDW
	}
	if n < 2 {
		return f, 0, protoErr("Length", "%d DW is shorter than the 2-DW header", n)
	}
	return f, n, nil
}

// payloadDWs returns the number of DW a payload of n bytes occupies.
func payloadDWs(n int) int { return (n + 3) / 4 }

// EncodeObject returns the data object carrying payload: the header and the
// payload zero-padded to a whole number of DW. It fails with ErrTooLarge if
// the payload does not fit in one object.
func EncodeObject(f Feature, payload []byte) ([]byte, error) {
	if len(payload) > MaxPayload {
		return nil, ErrTooLarge
	}
	n := payloadDWs(len(payload))
	dw0, dw1 := headerDWs(f, n+2)
	b := wire.NewBuilder(make([]byte, 0, 8+4*n))
	b.AddU32(dw0).AddU32(dw1).AddBytes(payload).AddZeros(4*n - len(payload))
	return b.Bytes(), nil
}

// DecodeObject decodes a whole data object: the header Length must equal
// len(b) exactly (which must be a whole number of DW), and the payload may
// not exceed maxPayload bytes (maxPayload <= 0 means MaxPayload). The payload
// is returned DW-padded, aliasing b.
func DecodeObject(b []byte, maxPayload int) (Feature, []byte, error) {
	if maxPayload <= 0 || maxPayload > MaxPayload {
		maxPayload = MaxPayload
	}
	s := wire.String(b)
	var dw0, dw1 uint32
	if !s.ReadU32(&dw0) || !s.ReadU32(&dw1) {
		return Feature{}, nil, protoErr("header", "object is %d bytes, shorter than the 8-byte header", len(b))
	}
	f, n, err := decodeHeader(dw0, dw1)
	if err != nil {
		return Feature{}, nil, err
	}
	if (n-2)*4 > maxPayload {
		return Feature{}, nil, protoErr("Length", "%d DW exceeds the %d-byte limit", n, maxPayload)
	}
	if len(b)%4 != 0 || len(b) != n*4 {
		return Feature{}, nil, protoErr("Length", "header says %d DW, object is %d bytes", n, len(b))
	}
	return f, b[HeaderSize:], nil
}

// Discovery (PCIe r6.0 §6.30.1.1, SPEC-FACTS §1.3). Request DW: Index [7:0],
// Discovery Version [15:8]. Response DW: Vendor ID [15:0], Data Object Type
// [23:16], Next Index [31:24] (0 = last entry). Some devices (discovery v2)
// append a second DW; it is accepted and ignored.
func encodeDiscoveryReq(index uint8) []byte {
	return wire.NewBuilder(nil).AddU32(uint32(index)).Bytes()
}

// decodeDiscoveryReq returns the index asked for.
func decodeDiscoveryReq(b []byte) (uint8, error) {
	s := wire.String(b)
	var dw uint32
	if !s.ReadU32(&dw) || !s.Empty() {
		return 0, protoErr("discovery request", "%d bytes, want 4", len(b))
	}
	return uint8(dw), nil
}

// decodeDiscoveryRsp decodes one discovery response payload.
func decodeDiscoveryRsp(b []byte) (f Feature, next uint8, err error) {
	s := wire.String(b)
	var dw, v2 uint32
	if !s.ReadU32(&dw) || (!s.Empty() && !s.ReadU32(&v2)) || !s.Empty() {
		return Feature{}, 0, protoErr("discovery response", "%d bytes, want 4 or 8", len(b))
	}
	return Feature{Vendor: uint16(dw), Type: uint8(dw >> 16)}, uint8(dw >> 24), nil
}

// encodeDiscoveryRsp encodes one discovery response payload.
func encodeDiscoveryRsp(f Feature, next uint8) []byte {
	return wire.NewBuilder(nil).AddU32(uint32(f.Vendor) | uint32(f.Type)<<16 | uint32(next)<<24).Bytes()
}

// AnswerDiscovery answers a discovery request payload from a feature list the
// way a device does: index 0 is Discovery itself (prepended if features does
// not start with it), Next Index is 0 on the last entry, and an index past
// the end gets Vendor 0xFFFF / Type 0xFF (what QEMU answers). Device models
// and the socket server use it.
func AnswerDiscovery(features []Feature, req []byte) ([]byte, error) {
	idx, err := decodeDiscoveryReq(req)
	if err != nil {
		return nil, err
	}
	list := discoveryList(features)
	if int(idx) >= len(list) {
		return encodeDiscoveryRsp(Feature{Vendor: 0xFFFF, Type: 0xFF}, 0), nil
	}
	next := uint8(0)
	if int(idx)+1 < len(list) {
		next = idx + 1
	}
	return encodeDiscoveryRsp(list[idx], next), nil
}

// discoveryList returns features with Discovery first and no duplicates,
// capped at 256 entries (the index is 8 bits).
func discoveryList(features []Feature) []Feature {
	list := []Feature{FeatureDiscovery}
	seen := map[Feature]bool{FeatureDiscovery: true}
	for _, f := range features {
		if !seen[f] && len(list) < 256 {
			seen[f] = true
			list = append(list, f)
		}
	}
	return list
}
