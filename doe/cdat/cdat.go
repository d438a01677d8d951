package cdat

import (
	"context"
	"errors"
	"fmt"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/wire"
)

// Table Access request/response (CXL 2.0 §8.1.11.1): DW0 [7:0] code (0 =
// Read Entry), [15:8] table type (0 = CDAT), [31:16] entry handle; the
// response DW0 carries the handle of the next entry (0xFFFF = last),
// followed by the entry itself.
const (
	codeReadEntry = 0
	typeCDAT      = 0
	// LastHandle in a response means no entry follows.
	LastHandle = 0xFFFF
	// HeaderSize is the size of the CDAT header.
	HeaderSize = 16
	// MaxEntries bounds the read loop (handles are 16 bits).
	MaxEntries = 4096
	// MaxTable bounds the table size we accept.
	MaxTable = 1 << 20
)

// Errors. A malformed answer is an *Error wrapping ErrMalformed.
var (
	ErrMalformed = errors.New("cdat: malformed table")
	ErrChecksum  = errors.New("cdat: checksum mismatch")
)

// Error says which field of the device's answer was wrong.
type Error struct {
	Field  string
	Reason string
	Err    error // ErrMalformed or ErrChecksum
}

func (e *Error) Error() string { return fmt.Sprintf("cdat: %s: %s", e.Field, e.Reason) }
func (e *Error) Unwrap() error { return e.Err }

func malformed(field, format string, a ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, a...), Err: ErrMalformed}
}

// Structure types (CDAT rev 1.02 Table 2).
const (
	TypeDSMAS   = 0 // Device Scoped Memory Affinity Structure
	TypeDSLBIS  = 1 // Device Scoped Latency and Bandwidth Information Structure
	TypeDSMSCIS = 2 // Device Scoped Memory Side Cache Information Structure
	TypeDSIS    = 3 // Device Scoped Initiator Structure
	TypeDSEMTS  = 4 // Device Scoped EFI Memory Type Structure
	TypeSSLBIS  = 5 // Switch Scoped Latency and Bandwidth Information Structure
)

var typeNames = map[uint8]string{TypeDSMAS: "DSMAS", TypeDSLBIS: "DSLBIS", TypeDSMSCIS: "DSMSCIS", TypeDSIS: "DSIS",
	TypeDSEMTS: "DSEMTS", TypeSSLBIS: "SSLBIS"}

// TypeName names a structure type ("DSMAS", ..., "type-N" when unknown).
func TypeName(t uint8) string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type-%d", t)
}

// Table is a checked CDAT.
type Table struct {
	Length     uint32      `json:"length"`
	Revision   uint8       `json:"revision"`
	Checksum   uint8       `json:"checksum"`
	Sequence   uint32      `json:"sequence"`
	Structures []Structure `json:"structures"`
	Raw        []byte      `json:"-"`
}

// Structure is one CDAT structure: a 4-byte common header (type, reserved,
// length) and its body.
type Structure struct {
	Type   uint8  `json:"type"`
	Name   string `json:"name"`
	Offset int    `json:"offset"`
	Length uint16 `json:"length"`
	Body   []byte `json:"body"` // after the common header
}

// Parse checks a whole CDAT: the header's Length equals len(b), all bytes sum
// to zero, and the structures after the header tile the rest exactly.
func Parse(b []byte) (*Table, error) {
	s := wire.String(b)
	t := &Table{Raw: b, Structures: []Structure{}}
	if !s.ReadU32(&t.Length) || !s.ReadU8(&t.Revision) || !s.ReadU8(&t.Checksum) || !s.Skip(6) || !s.ReadU32(&t.Sequence) {
		return nil, malformed("header", "%d bytes, need %d", len(b), HeaderSize)
	}
	if int64(t.Length) != int64(len(b)) {
		return nil, malformed("Length", "header says %d bytes, table has %d", t.Length, len(b))
	}
	var sum uint8
	for _, c := range b {
		sum += c
	}
	if sum != 0 {
		return nil, &Error{Field: "Checksum", Reason: fmt.Sprintf("bytes sum to 0x%02x, not 0", sum), Err: ErrChecksum}
	}
	off := HeaderSize
	for !s.Empty() {
		var st Structure
		var l uint16
		if !s.ReadU8(&st.Type) || !s.Skip(1) || !s.ReadU16(&l) {
			return nil, malformed("structure", "truncated header at offset %d", off)
		}
		if l < 4 {
			return nil, malformed("structure", "length %d at offset %d is shorter than its header", l, off)
		}
		if !s.ReadBytes(&st.Body, int(l)-4) {
			return nil, malformed("structure", "%s at offset %d claims %d bytes, %d left", TypeName(st.Type), off, l, s.Len()+4)
		}
		st.Name, st.Offset, st.Length = TypeName(st.Type), off, l
		t.Structures = append(t.Structures, st)
		off += int(l)
	}
	return t, nil
}

// ReadTable is Read followed by Parse: the raw table and its parse. A
// table the device got wrong, in how it answered or in what it holds, is
// an *Error; any other error is the mailbox's (the device did not answer).
func ReadTable(ctx context.Context, c doe.Conn) ([]byte, *Table, error) {
	raw, err := Read(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	tab, err := Parse(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, tab, nil
}

// Read reads the CDAT through the CXL Table Access feature of c: entry 0 is
// the CDAT header, each further entry one structure; the device names the
// next handle in each response. The loop ends at LastHandle and is bounded
// by MaxEntries, MaxTable and a handle seen twice (a loop). Entries are
// trimmed to their own length fields (DOE pads to DW). The result is the
// raw table; Parse checks it.
func Read(ctx context.Context, c doe.Conn) ([]byte, error) {
	var table []byte
	handle := uint16(0)
	seen := map[uint16]bool{}
	want := -1 // table length from the header, once read
	for n := 0; ; n++ {
		if n >= MaxEntries {
			return nil, malformed("EntryHandle", "more than %d entries", MaxEntries)
		}
		if seen[handle] {
			return nil, malformed("EntryHandle", "handle %#x requested twice: the device loops", handle)
		}
		seen[handle] = true
		req := wire.NewBuilder(nil).AddU8(codeReadEntry).AddU8(typeCDAT).AddU16(handle).Bytes()
		rsp, err := c.Exchange(ctx, doe.FeatureCXLCDAT, req)
		if err != nil {
			return nil, fmt.Errorf("cdat: read entry %#x: %w", handle, err)
		}
		s := wire.String(rsp)
		var code, typ uint8
		var next uint16
		if !s.ReadU8(&code) || !s.ReadU8(&typ) || !s.ReadU16(&next) {
			return nil, malformed("response", "%d bytes, need 4", len(rsp))
		}
		if code != codeReadEntry || typ != typeCDAT {
			return nil, malformed("response", "code %d table type %d, want 0 and 0", code, typ)
		}
		entry := []byte(s)
		var l int
		if handle == 0 {
			if len(entry) < HeaderSize {
				return nil, malformed("header", "entry 0 has %d bytes, need %d", len(entry), HeaderSize)
			}
			want = int(uint32(entry[0]) | uint32(entry[1])<<8 | uint32(entry[2])<<16 | uint32(entry[3])<<24)
			if want < HeaderSize || want > MaxTable {
				return nil, malformed("Length", "table length %d out of range [%d, %d]", want, HeaderSize, MaxTable)
			}
			l = HeaderSize
		} else {
			if len(entry) < 4 {
				return nil, malformed("structure", "entry %#x has %d bytes", handle, len(entry))
			}
			l = int(entry[2]) | int(entry[3])<<8
			if l < 4 || l > len(entry) {
				return nil, malformed("structure", "entry %#x length %d, %d bytes received", handle, l, len(entry))
			}
		}
		// Anything after the entry's own length is DW padding only.
		if len(entry)-l > 3 || !wire.Zero(entry[l:]) {
			return nil, malformed("response", "entry %#x carries %d bytes after its %d", handle, len(entry)-l, l)
		}
		table = append(table, entry[:l]...)
		if len(table) > want {
			return nil, malformed("Length", "entries exceed the table length %d", want)
		}
		if next == LastHandle {
			break
		}
		handle = next
	}
	if len(table) != want {
		return nil, malformed("Length", "header says %d bytes, entries gave %d", want, len(table))
	}
	return table, nil
}

// Build assembles a CDAT from structures (type and body), computing the
// header length and checksum: tests and the software device use it.
func Build(revision uint8, sequence uint32, structs []Structure) []byte {
	b := wire.NewBuilder(nil).AddU32(0).AddU8(revision).AddU8(0).AddZeros(6).AddU32(sequence)
	for _, s := range structs {
		b.AddU8(s.Type).AddU8(0).AddU16(uint16(4 + len(s.Body))).AddBytes(s.Body)
	}
	out := b.Bytes()
	n := uint32(len(out))
	out[0], out[1], out[2], out[3] = byte(n), byte(n>>8), byte(n>>16), byte(n>>24)
	var sum uint8
	for _, c := range out {
		sum += c
	}
	out[5] = -sum
	return out
}

// Entries splits a table into the entries a device serves: the header, then
// one per structure (the inverse of what Read concatenates).
func Entries(table []byte) [][]byte {
	if len(table) < HeaderSize {
		return nil
	}
	out := [][]byte{table[:HeaderSize]}
	for off := HeaderSize; off+4 <= len(table); {
		l := int(table[off+2]) | int(table[off+3])<<8
		if l < 4 || off+l > len(table) {
			break
		}
		out = append(out, table[off:off+l])
		off += l
	}
	return out
}

// Handler returns a device-side handler serving table over CXL Table
// Access with handles 0, 1, 2, ... (as QEMU does).
func Handler(table []byte) doe.Handler {
	ents := Entries(table)
	return func(f doe.Feature, req []byte) ([]byte, error) {
		if f != doe.FeatureCXLCDAT || len(req) < 4 || req[0] != codeReadEntry || req[1] != typeCDAT {
			return nil, errors.New("cdat: unsupported request")
		}
		h := int(req[2]) | int(req[3])<<8
		if h >= len(ents) {
			return nil, errors.New("cdat: no such entry")
		}
		next := h + 1
		if next >= len(ents) {
			next = LastHandle
		}
		return append([]byte{codeReadEntry, typeCDAT, byte(next), byte(next >> 8)}, ents[h]...), nil
	}
}
