package pci

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// memConfig is a 4 KiB config space in memory.
type memConfig []byte

func (m memConfig) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(m)) {
		return 0, nil
	}
	return copy(b, m[off:]), nil
}
func (m memConfig) WriteAt(b []byte, off int64) (int, error) { return copy(m[off:], b), nil }

func extHdr(id uint16, ver uint8, next uint16) uint32 {
	return uint32(id) | uint32(ver)<<16 | uint32(next)<<20
}

func TestExtCapabilities(t *testing.T) {
	m := make(memConfig, ConfigSize)
	binary.LittleEndian.PutUint32(m[0x100:], extHdr(ExtCapIDDSN, 1, 0x140))
	binary.LittleEndian.PutUint32(m[0x140:], extHdr(ExtCapIDDOE, 1, 0x160))
	binary.LittleEndian.PutUint32(m[0x160:], extHdr(ExtCapIDDOE, 1, 0))
	caps, err := ExtCapabilities(m)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 3 || caps[1] != (Capability{ID: ExtCapIDDOE, Version: 1, Offset: 0x140}) {
		t.Fatalf("caps = %+v", caps)
	}
	if got := FindExt(caps, ExtCapIDDOE); len(got) != 2 || got[0] != 0x140 || got[1] != 0x160 {
		t.Fatalf("FindExt = %v", got)
	}
}

func TestExtCapabilitiesHostile(t *testing.T) {
	cases := map[string]func(m memConfig){
		"self loop": func(m memConfig) { binary.LittleEndian.PutUint32(m[0x100:], extHdr(1, 1, 0x100)) },
		"two-cycle": func(m memConfig) {
			binary.LittleEndian.PutUint32(m[0x100:], extHdr(1, 1, 0x200))
			binary.LittleEndian.PutUint32(m[0x200:], extHdr(2, 1, 0x100))
		},
		"into header": func(m memConfig) { binary.LittleEndian.PutUint32(m[0x100:], extHdr(1, 1, 0x040)) },
		"empty next":  func(m memConfig) { binary.LittleEndian.PutUint32(m[0x100:], extHdr(1, 1, 0x200)) },
	}
	for name, setup := range cases {
		m := make(memConfig, ConfigSize)
		setup(m)
		if _, err := ExtCapabilities(m); !errors.Is(err, ErrCapLoop) {
			t.Errorf("%s: err = %v, want ErrCapLoop", name, err)
		}
	}
}

func TestCapabilitiesHostile(t *testing.T) {
	m := make(memConfig, ConfigSize)
	binary.LittleEndian.PutUint16(m[0x06:], statusCapList)
	m[0x34] = 0x40
	m[0x40], m[0x41] = CapIDPCIExpress, 0x50
	m[0x50], m[0x51] = CapIDMSIX, 0x40 // loops back
	caps, err := Capabilities(m)
	if !errors.Is(err, ErrCapLoop) || len(caps) != 2 {
		t.Fatalf("caps %v err %v", caps, err)
	}
	m[0x51] = 0
	caps, err = Capabilities(m)
	if err != nil || len(caps) != 2 || caps[1].ID != CapIDMSIX {
		t.Fatalf("caps %v err %v", caps, err)
	}
}

// shortConfig models sysfs for a reader without CAP_SYS_ADMIN: 64 bytes only.
type shortConfig struct{ memConfig }

func (s shortConfig) ReadAt(b []byte, off int64) (int, error) {
	if off >= 64 {
		return 0, nil
	}
	return s.memConfig.ReadAt(b[:min(len(b), int(64-off))], off)
}

func TestShortConfigRead(t *testing.T) {
	s := shortConfig{make(memConfig, ConfigSize)}
	if _, err := ReadU32(s, 0x100); !errors.Is(err, ErrShortConfig) {
		t.Fatalf("err = %v, want ErrShortConfig", err)
	}
	if _, err := ReadU32(s, 0x102); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("unaligned err = %v", err)
	}
	if _, err := ReadU16(s, 4095); err == nil {
		t.Fatal("read past 4 KiB succeeded")
	}
}

func TestConfigWriteRead(t *testing.T) {
	m := make(memConfig, ConfigSize)
	if err := WriteU32(m, 0x110, 0xdeadbeef); err != nil {
		t.Fatal(err)
	}
	if err := WriteU16(m, 0x114, 0x1234); err != nil {
		t.Fatal(err)
	}
	if err := WriteU8(m, 0x116, 0x56); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m[0x110:0x117], []byte{0xef, 0xbe, 0xad, 0xde, 0x34, 0x12, 0x56}) {
		t.Fatalf("% x", m[0x110:0x117])
	}
	v, err := ReadU32(m, 0x110)
	if err != nil || v != 0xdeadbeef {
		t.Fatalf("%x %v", v, err)
	}
}

func FuzzCapabilityWalk(f *testing.F) {
	seed := make([]byte, ConfigSize)
	binary.LittleEndian.PutUint32(seed[0x100:], extHdr(ExtCapIDDOE, 1, 0x100))
	binary.LittleEndian.PutUint16(seed[0x06:], statusCapList)
	seed[0x34] = 0x40
	f.Add(seed)
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, in []byte) {
		m := make(memConfig, ConfigSize)
		copy(m, in)
		caps, err := ExtCapabilities(m)
		if len(caps) > maxExtCaps {
			t.Fatalf("%d ext caps", len(caps))
		}
		for _, c := range caps {
			if c.Offset < 0x100 || c.Offset > ConfigSize-4 {
				t.Fatalf("cap offset %#x out of range (err %v)", c.Offset, err)
			}
		}
		scaps, _ := Capabilities(m)
		if len(scaps) > maxStdCaps {
			t.Fatalf("%d std caps", len(scaps))
		}
	})
}
