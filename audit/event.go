package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// EventSize is the size of one record in the ring buffer (struct event in cfgaccess.c).
const EventSize = 72

// Access is one config-space access by some process.
type Access struct {
	Time     time.Duration `json:"-"` // CLOCK_MONOTONIC (bpf_ktime_get_ns)
	WallTime time.Time     `json:"time"`
	PID      uint32        `json:"pid"` // thread group (process) ID
	TID      uint32        `json:"tid"`
	Comm     string        `json:"comm"`
	CgroupID uint64        `json:"cgroup_id"`
	Device   string        `json:"device"` // "0000:3b:00.0"
	Op       string        `json:"op"`     // "read" or "write"
	Offset   uint32        `json:"offset"`
	Size     uint8         `json:"size"`
	Value    *uint32       `json:"value,omitempty"` // writes only
	Path     string        `json:"path"`            // "sysfs", "procfs", "vfio", "unknown"
	Region   string        `json:"region,omitempty"`
	Attach   Mode          `json:"attach,omitempty"` // how the probes attached: "fentry", "kprobe-multi" or "kprobe"
}

// DecodeError reports a malformed ring-buffer record.
type DecodeError struct{ Msg string }

func (e *DecodeError) Error() string { return "audit: bad event record: " + e.Msg }

// paths names the path codes (index: enum access_path).
var paths = [...]string{0: "unknown", 1: "sysfs", 2: "procfs", 3: "vfio"}

// DecodeAccess decodes one ring-buffer record.
func DecodeAccess(b []byte) (*Access, error) { return new(decoder).decode(b) }

// decoder decodes a stream of records as DecodeAccess does, keeping the
// comm and device strings of the previous record: accesses come in bursts
// from one thread to one function, so most records need no new strings
// (two allocations fewer per event for the reader).
// The raw 16 bytes are compared first (two word compares): no search for
// the NUL when they repeat.
type decoder struct {
	comm, dev       string
	commRaw, devRaw [16]byte
}

// str returns b (16 bytes, NUL-padded) cut at its first NUL, reusing last
// when b equals raw, the bytes last came from.
func (d *decoder) str(b *[16]byte, raw *[16]byte, last *string) string {
	if *b != *raw {
		*raw = *b
		*last = string(cbytes(b[:]))
	}
	return *last
}

func (d *decoder) decode(b []byte) (*Access, error) {
	a := new(Access)
	if err := d.decodeInto(b, a); err != nil {
		return nil, err
	}
	return a, nil
}

// decodeInto decodes into *a, overwriting every field (the reader reuses
// one Access: no allocation per read event). A write's Value is a new
// uint32 each time, so a copy of *a stays valid after the next decode.
// On error *a is left partly written.
func (d *decoder) decodeInto(b []byte, a *Access) error {
	if len(b) != EventSize {
		return &DecodeError{fmt.Sprintf("%d bytes, want %d", len(b), EventSize)}
	}
	// A fixed layout, its length checked above: fields at their offsets
	// (struct event), one bounds check for all (b is 72 bytes), not a
	// checked read per field; the reader decodes every event.
	r := (*[EventSize]byte)(b)
	ts, cg := binary.LittleEndian.Uint64(r[0:8]), binary.LittleEndian.Uint64(r[8:16])
	tgid, tid := binary.LittleEndian.Uint32(r[16:20]), binary.LittleEndian.Uint32(r[20:24])
	off, val := binary.LittleEndian.Uint32(r[24:28]), binary.LittleEndian.Uint32(r[28:32])
	size, op, path, hasVal := r[32], r[33], r[34], r[35]
	// Field by field, not *a = Access{...}: the composite is built in a
	// temporary and copied, about twice the work per record.
	a.Time, a.WallTime, a.PID, a.TID, a.CgroupID = time.Duration(ts), time.Time{}, tgid, tid, cg
	a.Offset, a.Size, a.Value, a.Region, a.Attach = off, size, nil, "", ""
	a.Comm, a.Device = d.str((*[16]byte)(r[40:56]), &d.commRaw, &d.comm), d.str((*[16]byte)(r[56:72]), &d.devRaw, &d.dev)
	switch op {
	case 1:
		a.Op = "read"
	case 2:
		a.Op = "write"
	default:
		return &DecodeError{fmt.Sprintf("op %d", op)}
	}
	if size != 1 && size != 2 && size != 4 {
		return &DecodeError{fmt.Sprintf("size %d", size)}
	}
	if off > 4095 {
		return &DecodeError{fmt.Sprintf("offset %#x", off)}
	}
	if int(path) >= len(paths) {
		return &DecodeError{fmt.Sprintf("path %d", path)}
	}
	a.Path = paths[path]
	switch hasVal {
	case 0:
	case 1:
		if a.Op != "write" {
			return &DecodeError{"value on a read"}
		}
		v := val
		a.Value = &v
	default:
		return &DecodeError{fmt.Sprintf("has_value %d", hasVal)}
	}
	return nil
}

// EncodeAccess is DecodeAccess's inverse (tests and fuzzing).
func EncodeAccess(a *Access) []byte {
	op := uint8(1)
	if a.Op == "write" {
		op = 2
	}
	var path uint8
	for k, v := range paths {
		if v == a.Path {
			path = uint8(k)
		}
	}
	var val uint32
	var has uint8
	if a.Value != nil {
		val, has = *a.Value, 1
	}
	b := wire.NewBuilder(make([]byte, 0, EventSize)).AddU64(uint64(a.Time)).AddU64(a.CgroupID).AddU32(a.PID).AddU32(a.TID).
		AddU32(a.Offset).AddU32(val).AddU8(a.Size).AddU8(op).AddU8(path).AddU8(has).AddU32(0)
	b.AddBytes(fixed(a.Comm)).AddBytes(fixed(a.Device))
	return b.Bytes()
}

func fixed(s string) []byte {
	out := make([]byte, 16)
	copy(out[:15], s)
	return out
}

// cbytes cuts b at its first NUL.
func cbytes(b []byte) []byte {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b
}

// Layout says where a function's interesting registers are, for Classify.
type Layout struct {
	DOE  []uint16 // DOE capability offsets (0x18 bytes each)
	MSIX uint16   // MSI-X capability offset, 0 if none
	// Locked ranges (e.g. what a locked TDI must not see changed): [start, end).
	Locked [][2]uint16
}

// Classify names the region an access touched. The first match wins:
// doe-mailbox, tdisp-locked, command, status, bar, msix, header,
// capability (standard space), extended.
func Classify(off uint32, size uint8, l Layout) string {
	end := off + uint32(size)
	overlaps := func(a, b uint32) bool { return off < b && end > a }
	for _, d := range l.DOE {
		if overlaps(uint32(d), uint32(d)+0x18) {
			return "doe-mailbox"
		}
	}
	for _, r := range l.Locked {
		if overlaps(uint32(r[0]), uint32(r[1])) {
			return "tdisp-locked"
		}
	}
	switch {
	case overlaps(0x04, 0x06):
		return "command"
	case overlaps(0x06, 0x08):
		return "status"
	case overlaps(0x10, 0x28):
		return "bar"
	case l.MSIX != 0 && overlaps(uint32(l.MSIX), uint32(l.MSIX)+12):
		return "msix"
	case off < 0x40:
		return "header"
	case off < 0x100:
		return "capability"
	}
	return "extended"
}
