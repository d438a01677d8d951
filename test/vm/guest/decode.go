//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Decoders for the bytes the guest's (emulated, but still untrusted) devices
// return. Numbers: SPEC-FACTS §1 (PCIe r6.0 §7.9.24 DOE, §6.30.1.1 discovery;
// CXL 3.0 §8.1.11 Table Access DOE; CDAT 1.03 header and structure layout).

const (
	extCapStart = 0x100
	extCapIDDOE = 0x002E

	doeVendorPCISIG   = 0x0001
	doeVendorCXL      = 0x1E98
	doeTypeDiscovery  = 0x00
	doeTypeCXLCDAT    = 0x02
	cdatHeaderLen     = 16
	cdatEntryHdrLen   = 4
	maxCDATEntries    = 1024
	maxDiscoveryItems = 256
)

var errDecode = errors.New("decode")

// extCaps walks the extended capability list of a 4 KiB config space image
// and returns capability ID -> offsets (first found first). It stops with an
// error on a loop, a pointer out of range or too many entries.
func extCaps(cfg []byte) (map[uint16][]int, error) {
	out := map[uint16][]int{}
	if len(cfg) < 4096 {
		return nil, fmt.Errorf("%w: config space is %d bytes, want 4096 (extended space needs CAP_SYS_ADMIN)", errDecode, len(cfg))
	}
	seen := map[int]bool{}
	for off := extCapStart; off != 0; {
		if off < extCapStart || off > 4096-4 || off%4 != 0 {
			return out, fmt.Errorf("%w: extended capability pointer 0x%x out of range", errDecode, off)
		}
		if seen[off] {
			return out, fmt.Errorf("%w: extended capability loop at 0x%x", errDecode, off)
		}
		seen[off] = true
		hdr := binary.LittleEndian.Uint32(cfg[off:])
		if hdr == 0 || hdr == 0xffffffff {
			if off == extCapStart {
				return out, nil // no extended capabilities
			}
			return out, fmt.Errorf("%w: empty extended capability header at 0x%x", errDecode, off)
		}
		id := uint16(hdr & 0xffff)
		out[id] = append(out[id], off)
		off = int(hdr >> 20)
	}
	return out, nil
}

// doeHeader encodes the two header DWs of a data object of n payload DWs.
func doeHeader(vendor uint16, typ uint8, payloadDW int) [2]uint32 {
	return [2]uint32{uint32(vendor) | uint32(typ)<<16, uint32(payloadDW+2) & 0x3ffff}
}

// doeLength decodes header DW1: the object length in DW including the two
// header DWs; 0 means 2^18.
func doeLength(dw1 uint32) int {
	n := int(dw1 & 0x3ffff)
	if n == 0 {
		n = 1 << 18
	}
	return n
}

// Feature is a DOE data object type.
type Feature struct {
	Vendor uint16
	Type   uint8
}

func (f Feature) String() string { return fmt.Sprintf("%04x:%02x", f.Vendor, f.Type) }

// decodeDiscovery decodes a discovery response payload (one DW): the feature
// at the requested index and the next index (0 = last).
func decodeDiscovery(payload []uint32) (Feature, uint8, error) {
	if len(payload) < 1 {
		return Feature{}, 0, fmt.Errorf("%w: discovery response has no payload", errDecode)
	}
	dw := payload[0]
	return Feature{Vendor: uint16(dw), Type: uint8(dw >> 16)}, uint8(dw >> 24), nil
}

// cdatRequest is the Table Access read request DW for entry handle h of the
// CDAT table (request code 0, table type 0).
func cdatRequest(handle uint16) uint32 { return uint32(handle) << 16 }

// decodeCDATResponse splits one Table Access response payload into the next
// entry handle and the entry bytes (trimmed to the entry's own length; the
// first entry is the 16-byte CDAT header).
func decodeCDATResponse(payload []uint32, first bool) (next uint16, entry []byte, err error) {
	if len(payload) < 1 {
		return 0, nil, fmt.Errorf("%w: table access response has no payload", errDecode)
	}
	dw := payload[0]
	if code := uint8(dw); code != 0 {
		return 0, nil, fmt.Errorf("%w: table access response code %d, want 0 (read)", errDecode, code)
	}
	if tt := uint8(dw >> 8); tt != 0 {
		return 0, nil, fmt.Errorf("%w: table type %d, want 0 (CDAT)", errDecode, tt)
	}
	next = uint16(dw >> 16)
	b := make([]byte, 0, 4*(len(payload)-1))
	for _, d := range payload[1:] {
		b = binary.LittleEndian.AppendUint32(b, d)
	}
	want := cdatHeaderLen
	if !first {
		if len(b) < cdatEntryHdrLen {
			return 0, nil, fmt.Errorf("%w: CDAT entry is %d bytes, shorter than its header", errDecode, len(b))
		}
		want = int(binary.LittleEndian.Uint16(b[2:]))
		if want < cdatEntryHdrLen {
			return 0, nil, fmt.Errorf("%w: CDAT entry length %d", errDecode, want)
		}
	}
	if len(b) < want || len(b)-want >= 4 {
		return 0, nil, fmt.Errorf("%w: CDAT entry is %d bytes in the response, its length says %d", errDecode, len(b), want)
	}
	return next, b[:want], nil
}

// CDATEntry is one CDAT structure.
type CDATEntry struct {
	Type   uint8
	Length int
}

// CDAT is a checked CDAT table.
type CDAT struct {
	Length   uint32
	Revision uint8
	Sequence uint32
	Entries  []CDATEntry
}

// checkCDAT verifies a whole CDAT table: header length equals the table's
// size, the byte sum is 0 mod 256, and the structures tile the rest exactly.
func checkCDAT(b []byte) (*CDAT, error) {
	if len(b) < cdatHeaderLen {
		return nil, fmt.Errorf("%w: CDAT is %d bytes, shorter than its header", errDecode, len(b))
	}
	t := &CDAT{
		Length:   binary.LittleEndian.Uint32(b[0:]),
		Revision: b[4],
		Sequence: binary.LittleEndian.Uint32(b[12:]),
	}
	if int64(t.Length) != int64(len(b)) {
		return nil, fmt.Errorf("%w: CDAT header length %d, table is %d bytes", errDecode, t.Length, len(b))
	}
	var sum byte
	for _, c := range b {
		sum += c
	}
	if sum != 0 {
		return nil, fmt.Errorf("%w: CDAT checksum: bytes sum to 0x%02x, want 0", errDecode, sum)
	}
	for off := cdatHeaderLen; off < len(b); {
		if len(b)-off < cdatEntryHdrLen {
			return nil, fmt.Errorf("%w: CDAT trailing %d bytes at %d", errDecode, len(b)-off, off)
		}
		n := int(binary.LittleEndian.Uint16(b[off+2:]))
		if n < cdatEntryHdrLen || n > len(b)-off {
			return nil, fmt.Errorf("%w: CDAT structure at %d has length %d", errDecode, off, n)
		}
		if len(t.Entries) >= maxCDATEntries {
			return nil, fmt.Errorf("%w: more than %d CDAT structures", errDecode, maxCDATEntries)
		}
		t.Entries = append(t.Entries, CDATEntry{Type: b[off], Length: n})
		off += n
	}
	return t, nil
}
