package tdisp

import (
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Report limits. The report is fetched with u16 offsets, so it cannot exceed
// 0xFFFF + one portion; we cap it lower, and cap what a hostile count can
// make us allocate.
const (
	MaxReportSize     = 0x10000
	MaxMMIORanges     = (MaxReportSize - 20) / mmioRangeSize
	MaxDeviceSpecific = MaxReportSize
	mmioRangeSize     = 16
	reportFixedSize   = 16
	pageShift         = 12
)

// InterfaceInfo is the report's INTERFACE_INFO bit field.
type InterfaceInfo uint16

const (
	InfoNoFWUpdateAfterLock InterfaceInfo = 1 << 0
	InfoDMAWithoutPASID     InterfaceInfo = 1 << 1
	InfoDMAWithPASID        InterfaceInfo = 1 << 2
	InfoATS                 InterfaceInfo = 1 << 3
	InfoPRS                 InterfaceInfo = 1 << 4
)

// RangeAttributes is MMIO_RANGE.RangeAttributes.
type RangeAttributes uint16

const (
	RangeMSIXTable        RangeAttributes = 1 << 0
	RangeMSIXPBA          RangeAttributes = 1 << 1
	RangeNonTEEMem        RangeAttributes = 1 << 2
	RangeMemAttrUpdatable RangeAttributes = 1 << 3
)

// MMIORange is one 16-byte MMIO_RANGE of the report.
type MMIORange struct {
	FirstPage  uint64          `json:"first_page"` // 4 KiB page number, reporting offset included
	Pages      uint32          `json:"pages"`
	Attributes RangeAttributes `json:"attributes"`
	RangeID    uint16          `json:"range_id"`
}

func (r MMIORange) append(b *wire.Builder) {
	b.AddU64(r.FirstPage).AddU32(r.Pages).AddU16(uint16(r.Attributes)).AddU16(r.RangeID)
}

func (r *MMIORange) decode(s *wire.String) bool {
	var a uint16
	ok := s.ReadU64(&r.FirstPage) && s.ReadU32(&r.Pages) && s.ReadU16(&a) && s.ReadU16(&r.RangeID)
	r.Attributes = RangeAttributes(a)
	return ok
}

// HexBytes marshals as a lower-case hex string in JSON.
type HexBytes []byte

// MarshalJSON implements json.Marshaler.
func (h HexBytes) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// InterfaceReport is the parsed DEVICE_INTERFACE_REPORT (TDISP "TDI
// report structure").
type InterfaceReport struct {
	InterfaceInfo      InterfaceInfo `json:"interface_info"`
	MSIXControl        uint16        `json:"msix_message_control"`
	LNRControl         uint16        `json:"lnr_control"`
	TPHControl         uint32        `json:"tph_control"`
	MMIORanges         []MMIORange   `json:"mmio_ranges"`
	DeviceSpecificInfo HexBytes      `json:"device_specific_info"`
}

// ParseInterfaceReport decodes a complete report. Counts and lengths are
// checked against the bytes present before anything is allocated; reserved
// fields are ignored; trailing bytes are an error.
func ParseInterfaceReport(b []byte) (*InterfaceReport, error) {
	if len(b) > MaxReportSize {
		return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: "length", Offset: MaxReportSize}
	}
	s := wire.String(b)
	var r InterfaceReport
	var info uint16
	var n uint32
	if !s.ReadU16(&info) || !s.Skip(2) || !s.ReadU16(&r.MSIXControl) || !s.ReadU16(&r.LNRControl) ||
		!s.ReadU32(&r.TPHControl) || !s.ReadU32(&n) {
		return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: "header", Offset: len(b) - s.Len()}
	}
	r.InterfaceInfo = InterfaceInfo(info)
	if uint64(n)*mmioRangeSize > uint64(s.Len()) {
		return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: fmt.Sprintf("MMIO_RANGE_COUNT %d", n), Offset: 12}
	}
	r.MMIORanges = make([]MMIORange, n)
	for i := range r.MMIORanges {
		if !r.MMIORanges[i].decode(&s) {
			return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: "MMIO_RANGE", Offset: len(b) - s.Len()}
		}
	}
	var dl uint32
	var d []byte
	off := len(b) - s.Len()
	if !s.ReadU32(&dl) || uint64(dl) > uint64(s.Len()) || !s.ReadBytes(&d, int(dl)) {
		return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: "DEVICE_SPECIFIC_INFO_LEN", Offset: off}
	}
	if !s.Empty() {
		return nil, &DecodeError{Msg: "DEVICE_INTERFACE_REPORT", Field: "trailing bytes", Offset: len(b) - s.Len()}
	}
	r.DeviceSpecificInfo = append(HexBytes{}, d...)
	return &r, nil
}

// Marshal encodes the report (reserved fields zero).
func (r *InterfaceReport) Marshal() []byte {
	b := wire.NewBuilder(make([]byte, 0, reportFixedSize+len(r.MMIORanges)*mmioRangeSize+4+len(r.DeviceSpecificInfo)))
	b.AddU16(uint16(r.InterfaceInfo)).AddZeros(2).AddU16(r.MSIXControl).AddU16(r.LNRControl).AddU32(r.TPHControl)
	b.AddU32(uint32(len(r.MMIORanges)))
	for _, m := range r.MMIORanges {
		m.append(b)
	}
	b.AddU32(uint32(len(r.DeviceSpecificInfo))).AddBytes(r.DeviceSpecificInfo)
	return b.Bytes()
}
