package emu

import (
	"encoding/binary"
)

// DMTF measurement value types (DSP0274 1.3 Table "DMTFSpecMeasurementValueType"),
// bits [6:0] of DMTFSpecMeasurementValueType.
const (
	MeasImmutableROM      uint8  = 0x00
	MeasMutableFirmware   uint8  = 0x01
	MeasHardwareConfig    uint8  = 0x02
	MeasFirmwareConfig    uint8  = 0x03
	MeasManifest          uint8  = 0x04
	MeasDeviceMode        uint8  = 0x05
	MeasFirmwareVersion   uint8  = 0x06
	MeasFirmwareSVN       uint8  = 0x07
	MeasHashExtended      uint8  = 0x08
	MeasInformational     uint8  = 0x09
	MeasStructManifest    uint8  = 0x0A
	measIndexManifest     uint8  = 0xFD
	measIndexDeviceMode   uint8  = 0xFE
	deviceModeNormal      uint32 = 1 << 2 // OperationalModeState: normal operational mode
	deviceModeCapsAll     uint32 = 0x3F   // manufacturing … decommissioned
	deviceDebugCapsAll    uint32 = 0x1F
	firmwareVersion              = "1.4.2"
	firmwareImage                = "vfio-gate emu firmware image 1.4.2 (build 2026-11-01)"
	firmwareImageTampered        = "vfio-gate emu firmware image 1.4.2 (build 2026-11-01) + implant"
)

// Measurement is one measurement the device reports. Value is what was
// measured: the responder reports its digest under the negotiated measurement
// hash, or Value itself when Raw is set (or a raw bit stream is requested).
type Measurement struct {
	Index uint8 // 1..0xFE
	Type  uint8 // DMTF value type, bits [6:0]
	Raw   bool  // report the value as a raw bit stream, not a digest
	Value []byte
}

// DeviceMode encodes the DMTF device-mode measurement (type 5, 1.2+):
// OperationalModeCapabilities, OperationalModeState,
// DeviceModeCapabilities, DeviceModeState, four little-endian u32.
func DeviceMode(opCaps, opState, devCaps, devState uint32) []byte {
	b := make([]byte, 16)
	binary.LittleEndian.PutUint32(b[0:], opCaps)
	binary.LittleEndian.PutUint32(b[4:], opState)
	binary.LittleEndian.PutUint32(b[8:], devCaps)
	binary.LittleEndian.PutUint32(b[12:], devState)
	return b
}

// SVN encodes a firmware security version number (type 7, u64 little-endian).
func SVN(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// GoodMeasurements is the measurement set of a healthy software device:
// indices 1–6 and the DMTF-reserved manifest (0xFD) and device mode (0xFE).
func GoodMeasurements() []Measurement {
	return []Measurement{
		{Index: 1, Type: MeasImmutableROM, Value: []byte("vfio-gate emu boot ROM v1 (mask ROM, immutable)")},
		{Index: 2, Type: MeasMutableFirmware, Value: []byte(firmwareImage)},
		{Index: 3, Type: MeasHardwareConfig, Value: []byte("vfio-gate emu hw config: lanes=16 bars=1 sriov=off")},
		{Index: 4, Type: MeasFirmwareConfig, Value: []byte("vfio-gate emu fw config: secure-boot=on debug=off")},
		{Index: 5, Type: MeasFirmwareVersion, Raw: true, Value: []byte(firmwareVersion)},
		{Index: 6, Type: MeasFirmwareSVN, Raw: true, Value: SVN(3)},
		{Index: measIndexManifest, Type: MeasManifest, Raw: true, Value: []byte(`{"component":"vfio-gate-emu","fw":"1.4.2","svn":3}`)},
		{Index: measIndexDeviceMode, Type: MeasDeviceMode, Raw: true, Value: DeviceMode(deviceModeCapsAll, deviceModeNormal, deviceDebugCapsAll, 0)},
	}
}

// TamperedMeasurements is GoodMeasurements with a modified firmware image
// (index 2) and everything else unchanged: the version string still claims 1.4.2.
func TamperedMeasurements() []Measurement {
	m := GoodMeasurements()
	for i := range m {
		if m[i].Index == 2 {
			m[i].Value = []byte(firmwareImageTampered)
		}
	}
	return m
}

func cloneMeasurements(in []Measurement) []Measurement {
	out := make([]Measurement, len(in))
	for i, m := range in {
		m.Value = append([]byte(nil), m.Value...)
		out[i] = m
	}
	return out
}
