package wire

import (
	"bytes"
	"testing"
)

func TestReadsAndBuilds(t *testing.T) {
	b := NewBuilder(nil).AddU8(0x01).AddU16(0x0302).AddU24(0x060504).AddU32(0x0a090807).
		AddU64(0x1211100f0e0d0c0b).AddBytes([]byte{0xaa, 0xbb}).AddZeros(2)
	want := []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 0xaa, 0xbb, 0, 0}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("built % x, want % x", b.Bytes(), want)
	}
	s := String(b.Bytes())
	var (
		u8  uint8
		u16 uint16
		u24 uint32
		u32 uint32
		u64 uint64
		raw []byte
	)
	ok := s.ReadU8(&u8) && s.ReadU16(&u16) && s.ReadU24(&u24) && s.ReadU32(&u32) && s.ReadU64(&u64) &&
		s.ReadBytes(&raw, 2) && s.Skip(2) && s.Empty()
	if !ok {
		t.Fatal("reads failed")
	}
	if u8 != 1 || u16 != 0x0302 || u24 != 0x060504 || u32 != 0x0a090807 || u64 != 0x1211100f0e0d0c0b || !bytes.Equal(raw, []byte{0xaa, 0xbb}) {
		t.Fatalf("got %x %x %x %x %x % x", u8, u16, u24, u32, u64, raw)
	}
}

func TestShortReadsFailWithoutConsuming(t *testing.T) {
	s := String([]byte{1, 2, 3})
	var u32 uint32
	if s.ReadU32(&u32) {
		t.Fatal("ReadU32 on 3 bytes succeeded")
	}
	if s.Len() != 3 {
		t.Fatalf("failed read consumed input: %d left", s.Len())
	}
	var raw []byte
	if s.ReadBytes(&raw, -1) || s.Skip(4) {
		t.Fatal("negative or oversize read succeeded")
	}
	var v []uint16
	if ReadU16s(&s, &v, 2) {
		t.Fatal("ReadU16s beyond input succeeded")
	}
}

func TestLenPrefixed(t *testing.T) {
	s := String([]byte{2, 0, 'h', 'i', 1, 'x', 9})
	var a, c String
	if !s.ReadU16LenPrefixed(&a) || string(a) != "hi" || !s.ReadU8LenPrefixed(&c) || string(c) != "x" {
		t.Fatal("length-prefixed reads failed")
	}
	if s.ReadU8LenPrefixed(&c) {
		t.Fatal("prefix claiming 9 bytes of 0 succeeded")
	}
}

func TestZero(t *testing.T) {
	if !Zero(nil) || !Zero([]byte{0, 0}) || Zero([]byte{0, 1}) {
		t.Fatal("Zero wrong")
	}
}

func TestSetU16At(t *testing.T) {
	b := NewBuilder(nil).AddU16(0).AddU8(7)
	b.SetU16At(0, 0xbeef)
	if !bytes.Equal(b.Bytes(), []byte{0xef, 0xbe, 7}) {
		t.Fatalf("% x", b.Bytes())
	}
}

func FuzzString(f *testing.F) {
	f.Add([]byte{}, uint8(3))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9}, uint8(200))
	f.Fuzz(func(t *testing.T, in []byte, n uint8) {
		s := String(in)
		var u16 uint16
		var u32 uint32
		var v []uint32
		var p String
		before := s.Len()
		_ = s.ReadU16(&u16) && s.ReadU24(&u32) && ReadU32s(&s, &v, int(n)) && s.ReadU16LenPrefixed(&p)
		if s.Len() > before {
			t.Fatal("reading grew the string")
		}
	})
}
