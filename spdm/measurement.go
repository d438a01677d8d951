package spdm

import (
	"encoding/binary"
	"fmt"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// DMTF measurement value types (DMTFSpecMeasurementValueType [6:0]).
// DSP0274 1.3 Table "DMTF measurement specification format".
const (
	MeasTypeImmutableROM       uint8 = 0
	MeasTypeMutableFirmware    uint8 = 1
	MeasTypeHardwareConfig     uint8 = 2
	MeasTypeFirmwareConfig     uint8 = 3
	MeasTypeManifest           uint8 = 4
	MeasTypeDeviceMode         uint8 = 5
	MeasTypeFirmwareVersion    uint8 = 6
	MeasTypeFirmwareSVN        uint8 = 7
	MeasTypeHashExtended       uint8 = 8
	MeasTypeInformational      uint8 = 9
	MeasTypeStructuredManifest uint8 = 10
)

var measTypeNames = []string{
	"immutable-rom", "mutable-firmware", "hardware-config", "firmware-config", "measurement-manifest",
	"device-mode", "firmware-version", "firmware-svn", "hash-extended", "informational", "structured-manifest",
}

// MeasTypeName names a DMTF value type ("unknown-0x2a" for others).
func MeasTypeName(t uint8) string {
	if int(t) < len(measTypeNames) {
		return measTypeNames[t]
	}
	return fmt.Sprintf("unknown-0x%02x", t)
}

// DeviceMode is the DMTF device mode value (type 5): four u32 fields.
type DeviceMode struct {
	OperationalModeCapabilities uint32
	OperationalModeState        uint32
	DeviceModeCapabilities      uint32
	DeviceModeState             uint32
}

// MeasurementBlock is one block of a MEASUREMENTS record.
type MeasurementBlock struct {
	Index uint8
	Spec  uint8 // MeasurementSpecification (bit 0 DMTF)
	// DMTF is true when Spec is DMTF and the DMTF header parsed; then Type,
	// RawBitStream and Value are set. Otherwise only Raw is meaningful.
	DMTF         bool
	Type         uint8 // [6:0]
	RawBitStream bool  // bit 7: Value is the raw bit stream, not a digest
	Value        []byte
	// Decoded forms of known raw values (nil when not applicable or malformed).
	DeviceMode *DeviceMode
	SVN        *uint64
	Version    *string
	// Raw is the whole block including its 4-byte header.
	Raw []byte
}

// TypeName names the DMTF value type.
func (b *MeasurementBlock) TypeName() string {
	if !b.DMTF {
		return "non-dmtf"
	}
	return MeasTypeName(b.Type)
}

// maxMeasBlocks caps blocks per record (indices 1..0xFE).
const maxMeasBlocks = 254

// parseMeasurementRecord parses exactly n blocks filling rec. Indices must be
// 1..0xFE; DMTF blocks must have MeasurementSize = 3 + ValueSize.
func parseMeasurementRecord(rec []byte, n int) ([]MeasurementBlock, *DecodeError) {
	d := newDecoder("MeasurementRecord", rec)
	if n > maxMeasBlocks {
		d.fail("NumberOfBlocks", "too many blocks")
		return nil, d.e
	}
	blocks := make([]MeasurementBlock, 0, n)
	for i := 0; i < n; i++ {
		start := d.off()
		var blk MeasurementBlock
		var size uint16
		var body []byte
		if !(d.u8(&blk.Index, "Index") && d.check(blk.Index != 0 && blk.Index != 0xFF, "Index", "reserved index") &&
			d.u8(&blk.Spec, "MeasurementSpecification") && d.check(oneBit(blk.Spec), "MeasurementSpecification", "not exactly one bit") &&
			d.u16(&size, "MeasurementSize") && d.bytes(&body, int(size), "Measurement")) {
			return nil, d.e
		}
		blk.Raw = rec[start:d.off()]
		if blk.Spec == MeasurementSpecDMTF {
			s := wire.String(body)
			var vt uint8
			var vsize uint16
			if !(s.ReadU8(&vt) && s.ReadU16(&vsize) && s.ReadBytes(&blk.Value, int(vsize)) && s.Empty()) {
				d.failAt("DMTFSpecMeasurementValueSize", "does not match MeasurementSize", start+4)
				return nil, d.e
			}
			blk.DMTF, blk.Type, blk.RawBitStream = true, vt&0x7F, vt&0x80 != 0
			blk.decodeValue()
		}
		blocks = append(blocks, blk)
	}
	if !d.end() {
		return nil, d.e
	}
	return blocks, nil
}

// decodeValue fills the typed forms of raw-bit-stream values it knows.
func (b *MeasurementBlock) decodeValue() {
	if !b.RawBitStream {
		return
	}
	switch b.Type {
	case MeasTypeDeviceMode:
		if len(b.Value) == 16 {
			v := b.Value
			b.DeviceMode = &DeviceMode{binary.LittleEndian.Uint32(v), binary.LittleEndian.Uint32(v[4:]),
				binary.LittleEndian.Uint32(v[8:]), binary.LittleEndian.Uint32(v[12:])}
		}
	case MeasTypeFirmwareSVN:
		if len(b.Value) == 8 {
			svn := binary.LittleEndian.Uint64(b.Value)
			b.SVN = &svn
		}
	case MeasTypeFirmwareVersion:
		s := string(b.Value)
		b.Version = &s
	}
}

// marshalMeasurementRecord builds a record from DMTF blocks (for the
// responder and tests): Index, Spec=DMTF, Size, Type, ValueSize, Value.
func marshalMeasurementRecord(blocks []MeasurementBlock) []byte {
	b := wire.NewBuilder(nil)
	for _, blk := range blocks {
		if !blk.DMTF {
			b.AddBytes(blk.Raw)
			continue
		}
		vt := blk.Type & 0x7F
		if blk.RawBitStream {
			vt |= 0x80
		}
		b.AddU8(blk.Index).AddU8(MeasurementSpecDMTF).AddU16(uint16(3 + len(blk.Value))).
			AddU8(vt).AddU16(uint16(len(blk.Value))).AddBytes(blk.Value)
	}
	return b.Bytes()
}
