package wire

import "encoding/binary"

// String is a byte string being consumed from the front.
type String []byte

// read advances s by n bytes and returns them, or nil if fewer remain.
func (s *String) read(n int) []byte {
	if n < 0 || len(*s) < n {
		return nil
	}
	v := (*s)[:n:n]
	*s = (*s)[n:]
	return v
}

// Len reports the number of unread bytes.
func (s String) Len() int { return len(s) }

// Empty reports whether every byte has been read.
func (s String) Empty() bool { return len(s) == 0 }

// Skip advances past n bytes.
func (s *String) Skip(n int) bool { return s.read(n) != nil }

// ReadU8 reads one byte.
func (s *String) ReadU8(out *uint8) bool {
	v := s.read(1)
	if v == nil {
		return false
	}
	*out = v[0]
	return true
}

// ReadU16 reads a little-endian uint16.
func (s *String) ReadU16(out *uint16) bool {
	v := s.read(2)
	if v == nil {
		return false
	}
	*out = binary.LittleEndian.Uint16(v)
	return true
}

// ReadU24 reads a little-endian 24-bit value (the SPDM MeasurementRecordLength).
func (s *String) ReadU24(out *uint32) bool {
	v := s.read(3)
	if v == nil {
		return false
	}
	*out = uint32(v[0]) | uint32(v[1])<<8 | uint32(v[2])<<16
	return true
}

// ReadU32 reads a little-endian uint32.
func (s *String) ReadU32(out *uint32) bool {
	v := s.read(4)
	if v == nil {
		return false
	}
	*out = binary.LittleEndian.Uint32(v)
	return true
}

// ReadU64 reads a little-endian uint64.
func (s *String) ReadU64(out *uint64) bool {
	v := s.read(8)
	if v == nil {
		return false
	}
	*out = binary.LittleEndian.Uint64(v)
	return true
}

// ReadBytes sets *out to the next n bytes. The result aliases s; copy it if it
// must outlive the input buffer.
func (s *String) ReadBytes(out *[]byte, n int) bool {
	v := s.read(n)
	if v == nil {
		return false
	}
	*out = v
	return true
}

// CopyBytes fills out from the next len(out) bytes.
func (s *String) CopyBytes(out []byte) bool {
	v := s.read(len(out))
	if v == nil {
		return false
	}
	copy(out, v)
	return true
}

// ReadU8LenPrefixed reads a one-byte length and that many bytes into out.
func (s *String) ReadU8LenPrefixed(out *String) bool {
	var n uint8
	return s.ReadU8(&n) && s.ReadBytes((*[]byte)(out), int(n))
}

// ReadU16LenPrefixed reads a little-endian uint16 length and that many bytes into out.
func (s *String) ReadU16LenPrefixed(out *String) bool {
	var n uint16
	return s.ReadU16(&n) && s.ReadBytes((*[]byte)(out), int(n))
}

// ReadU16s reads n little-endian uint16 values.
func ReadU16s(s *String, out *[]uint16, n int) bool {
	if n < 0 || s.Len() < 2*n {
		return false
	}
	v := make([]uint16, n)
	for i := range v {
		if !s.ReadU16(&v[i]) {
			return false
		}
	}
	*out = v
	return true
}

// ReadU32s reads n little-endian uint32 values.
func ReadU32s(s *String, out *[]uint32, n int) bool {
	if n < 0 || s.Len() < 4*n {
		return false
	}
	v := make([]uint32, n)
	for i := range v {
		if !s.ReadU32(&v[i]) {
			return false
		}
	}
	*out = v
	return true
}

// Zero reports whether every byte of b is zero (for must-be-zero fields).
func Zero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// Builder appends little-endian values to a byte slice.
type Builder struct{ b []byte }

// NewBuilder returns a Builder that appends to buf (which may be nil).
func NewBuilder(buf []byte) *Builder { return &Builder{b: buf} }

// Bytes returns the bytes built so far.
func (b *Builder) Bytes() []byte { return b.b }

// Len reports the number of bytes built so far.
func (b *Builder) Len() int { return len(b.b) }

// AddU8 appends one byte.
func (b *Builder) AddU8(v uint8) *Builder { b.b = append(b.b, v); return b }

// AddU16 appends a little-endian uint16.
func (b *Builder) AddU16(v uint16) *Builder {
	b.b = binary.LittleEndian.AppendUint16(b.b, v)
	return b
}

// AddU24 appends the low 24 bits of v, little-endian.
func (b *Builder) AddU24(v uint32) *Builder {
	b.b = append(b.b, byte(v), byte(v>>8), byte(v>>16))
	return b
}

// AddU32 appends a little-endian uint32.
func (b *Builder) AddU32(v uint32) *Builder {
	b.b = binary.LittleEndian.AppendUint32(b.b, v)
	return b
}

// AddU64 appends a little-endian uint64.
func (b *Builder) AddU64(v uint64) *Builder {
	b.b = binary.LittleEndian.AppendUint64(b.b, v)
	return b
}

// AddBytes appends v.
func (b *Builder) AddBytes(v []byte) *Builder { b.b = append(b.b, v...); return b }

// AddZeros appends n zero bytes (reserved fields).
func (b *Builder) AddZeros(n int) *Builder {
	for range n {
		b.b = append(b.b, 0)
	}
	return b
}

// SetU16At overwrites a little-endian uint16 at off, for length fields that are
// known only after the body is built. It panics if off is out of range: that is
// a bug in our encoder, never a property of input.
func (b *Builder) SetU16At(off int, v uint16) {
	binary.LittleEndian.PutUint16(b.b[off:off+2], v)
}
