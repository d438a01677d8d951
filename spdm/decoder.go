package spdm

import (
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// decoder walks one message with internal/wire and remembers the first
// failure as a *DecodeError naming the field and its offset.
type decoder struct {
	msg string
	b   []byte
	s   wire.String
	e   *DecodeError
}

func newDecoder(msg string, b []byte) *decoder { return &decoder{msg: msg, b: b, s: wire.String(b)} }

func (d *decoder) off() int { return len(d.b) - len(d.s) }

// fail records the first error and returns false so reads chain with &&.
func (d *decoder) fail(field, reason string) bool {
	if d.e == nil {
		d.e = &DecodeError{Msg: d.msg, Field: field, Offset: d.off(), Reason: reason}
	}
	return false
}

func (d *decoder) err() error {
	if d.e == nil {
		return nil
	}
	return d.e
}

func (d *decoder) u8(out *uint8, field string) bool {
	return d.s.ReadU8(out) || d.fail(field, "short message")
}

func (d *decoder) u16(out *uint16, field string) bool {
	return d.s.ReadU16(out) || d.fail(field, "short message")
}

func (d *decoder) u24(out *uint32, field string) bool {
	return d.s.ReadU24(out) || d.fail(field, "short message")
}

func (d *decoder) u32(out *uint32, field string) bool {
	return d.s.ReadU32(out) || d.fail(field, "short message")
}

func (d *decoder) bytes(out *[]byte, n int, field string) bool {
	return d.s.ReadBytes(out, n) || d.fail(field, "short message")
}

func (d *decoder) fixed(out []byte, field string) bool {
	return d.s.CopyBytes(out) || d.fail(field, "short message")
}

// mbz reads n must-be-zero bytes.
func (d *decoder) mbz(n int, field string) bool {
	var v []byte
	if !d.s.ReadBytes(&v, n) {
		return d.fail(field, "short message")
	}
	return wire.Zero(v) || d.failAt(field, "reserved bytes not zero", d.off()-n)
}

func (d *decoder) failAt(field, reason string, off int) bool {
	if d.e == nil {
		d.e = &DecodeError{Msg: d.msg, Field: field, Offset: off, Reason: reason}
	}
	return false
}

// check records reason against field when ok is false.
func (d *decoder) check(ok bool, field, reason string) bool {
	return ok || d.fail(field, reason)
}

// end rejects trailing bytes.
func (d *decoder) end() bool { return d.s.Empty() || d.fail("end", "trailing bytes") }

// hdr is the 4-byte SPDM header. DSP0274 1.3 §10.2 Table 3.
type hdr struct {
	Version Version
	Code    uint8
	Param1  uint8
	Param2  uint8
}

func (h hdr) append(b *wire.Builder) *wire.Builder {
	return b.AddU8(uint8(h.Version)).AddU8(h.Code).AddU8(h.Param1).AddU8(h.Param2)
}

// header reads the header and checks the code and that the version is one
// this package knows (1.0–1.3).
func (d *decoder) header(h *hdr, code uint8) bool {
	var v uint8
	if !d.u8(&v, "SPDMVersion") {
		return false
	}
	h.Version = Version(v)
	if !h.Version.valid() {
		return d.failAt("SPDMVersion", "unsupported version", 0)
	}
	return d.u8(&h.Code, "RequestResponseCode") &&
		(h.Code == code || d.failAt("RequestResponseCode", "wrong code", 1)) &&
		d.u8(&h.Param1, "Param1") && d.u8(&h.Param2, "Param2")
}

// decodePadded removes DOE zero padding at the transport edge: DOE pads every
// object to a multiple of 4 bytes and the SPDM message length is defined only
// by its own fields. It tries the buffer as is and then with 1–3 trailing zero
// bytes removed, and returns the first strict decode that succeeds. Only the
// requester's transport edge calls it; every decoder on its own rejects
// trailing bytes.
func decodePadded[T any](b []byte, dec func([]byte) (T, error)) (T, error) {
	m, err := dec(b)
	if err == nil {
		return m, nil
	}
	for n := 1; n <= 3 && n <= len(b); n++ {
		if b[len(b)-n] != 0 {
			break
		}
		if m2, err2 := dec(b[:len(b)-n]); err2 == nil {
			return m2, nil
		}
	}
	return m, err
}

// transferSizes reads the 1.2+ DataTransferSize and MaxSPDMmsgSize of
// GET_CAPABILITIES and CAPABILITIES: DataTransferSize at least 42, and no
// larger than MaxSPDMmsgSize.
func (d *decoder) transferSizes(dts, maxMsg *uint32) bool {
	return d.u32(dts, "DataTransferSize") &&
		d.check(*dts >= minDataTransferSize, "DataTransferSize", "below 42") &&
		d.u32(maxMsg, "MaxSPDMmsgSize") &&
		d.check(*maxMsg >= *dts, "MaxSPDMmsgSize", "below DataTransferSize")
}
