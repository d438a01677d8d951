package emu

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/pci"
)

var testID = Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02, SubVendor: 0x1af4, SubDevice: 0x1100, DSN: 0x0011223344556677}

func TestCMAName(t *testing.T) {
	want := "Vendor=1b36:Device=0010:CC=010802:REV=02:SSVID=1af4:SSID=1100:0011223344556677"
	if got := testID.CMAName(); got != want {
		t.Fatalf("CMAName = %q, want %q", got, want)
	}
	noDSN := testID
	noDSN.DSN = 0
	if got := noDSN.CMAName(); got != strings.TrimSuffix(want, ":0011223344556677") {
		t.Fatalf("CMAName without DSN = %q", got)
	}
}

// verify checks leaf against anchor the way a requester would (any EKU:
// SPDM has its own EKU rules).
func verify(c *Chain, anchor *x509.Certificate, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(anchor)
	inter := x509.NewCertPool()
	inter.AddCert(c.Certs[1])
	_, err := c.Leaf().Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	return err
}

func TestChainAllKeyTypes(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, k := range KeyTypes {
		t.Run(k.String(), func(t *testing.T) {
			c, err := testChain(t, k, ChainOptions{Identity: testID, Now: now})
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Certs) != 3 || c.Anchor != c.Certs[0] {
				t.Fatalf("chain shape: %d certs, anchor is root: %v", len(c.Certs), c.Anchor == c.Certs[0])
			}
			if err := verify(c, c.Anchor, now); err != nil {
				t.Fatalf("chain does not verify against its anchor: %v", err)
			}
			leaf := c.Leaf()
			if leaf.IsCA || !leaf.BasicConstraintsValid || leaf.KeyUsage != x509.KeyUsageDigitalSignature {
				t.Errorf("leaf constraints: CA=%v valid=%v KU=%v", leaf.IsCA, leaf.BasicConstraintsValid, leaf.KeyUsage)
			}
			name, ok := CMANameFromCert(leaf)
			if !ok || name != testID.CMAName() {
				t.Errorf("leaf CMA SAN = %q, %v; want %q", name, ok, testID.CMAName())
			}
			if !c.Certs[0].IsCA || !c.Certs[1].IsCA {
				t.Error("root or intermediate is not a CA")
			}
		})
	}
}

func TestChainFaults(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	k := KeyECDSAP256
	t.Run("expired", func(t *testing.T) {
		c, err := NewChain(k, ChainOptions{Identity: testID, Now: now, ExpiredLeaf: true})
		if err != nil {
			t.Fatal(err)
		}
		var ce x509.CertificateInvalidError
		if err := verify(c, c.Anchor, now); !errors.As(err, &ce) || ce.Reason != x509.Expired {
			t.Fatalf("expired leaf: err = %v, want x509 Expired", err)
		}
	})
	t.Run("wrong-root", func(t *testing.T) {
		c, err := NewChain(k, ChainOptions{Identity: testID, Now: now, WrongRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		if c.Anchor == c.Certs[0] || c.Anchor.Subject.String() != c.Certs[0].Subject.String() {
			t.Fatal("wrong root must differ from the anchor but carry the same subject")
		}
		var ua x509.UnknownAuthorityError
		if err := verify(c, c.Anchor, now); !errors.As(err, &ua) {
			t.Fatalf("wrong root: err = %v, want UnknownAuthorityError", err)
		}
		if err := verify(c, c.Certs[0], now); err != nil {
			t.Fatalf("chain must still verify against its own root: %v", err)
		}
	})
	t.Run("san-mismatch", func(t *testing.T) {
		c, err := NewChain(k, ChainOptions{Identity: testID, Now: now, SANMismatch: true})
		if err != nil {
			t.Fatal(err)
		}
		name, ok := CMANameFromCert(c.Leaf())
		if !ok || name == testID.CMAName() || !strings.HasPrefix(name, "Vendor=1b36:Device=") {
			t.Fatalf("SAN = %q, %v", name, ok)
		}
	})
	t.Run("no-san", func(t *testing.T) {
		c, err := NewChain(k, ChainOptions{Identity: testID, Now: now, NoSAN: true})
		if err != nil {
			t.Fatal(err)
		}
		if name, ok := CMANameFromCert(c.Leaf()); ok {
			t.Fatalf("SAN present: %q", name)
		}
		if err := verify(c, c.Anchor, now); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConfigSpace(t *testing.T) {
	regs := &fakeRegs{}
	cs := NewConfigSpace(testID, regs)
	caps, err := pci.ExtCapabilities(cs)
	if err != nil {
		t.Fatal(err)
	}
	if len(caps) != 2 || caps[0].ID != pci.ExtCapIDDSN || caps[1].ID != pci.ExtCapIDDOE || int64(caps[1].Offset) != cs.DOEOffset() {
		t.Fatalf("ext caps = %+v", caps)
	}
	std, err := pci.Capabilities(cs)
	if err != nil || len(std) != 1 || std[0].ID != pci.CapIDPCIExpress {
		t.Fatalf("std caps = %+v, %v", std, err)
	}
	for off, want := range map[int64]uint32{0x00: 0x00101b36, 0x08: 0x01080202, 0x2c: 0x11001af4, 0x104: 0x44556677, 0x108: 0x00112233} {
		if v, err := pci.ReadU32(cs, off); err != nil || v != want {
			t.Errorf("dword %#x = %#x, %v; want %#x", off, v, err, want)
		}
	}
	// Read-only IDs, writable BAR sizing and command bits.
	if err := pci.WriteU32(cs, 0, 0xffffffff); err != nil {
		t.Fatal(err)
	}
	if v, _ := pci.ReadU16(cs, 0); v != 0x1b36 {
		t.Errorf("vendor ID written: %#x", v)
	}
	_ = pci.WriteU32(cs, 0x10, 0xffffffff)
	if v, _ := pci.ReadU32(cs, 0x10); v != 0xffff0004 {
		t.Errorf("BAR0 sizing reads %#x, want 0xffff0004", v)
	}
	_, _ = cs.WriteAt([]byte{0xff, 0xff}, 0x04) // a 16-bit write
	if v, _ := pci.ReadU16(cs, 0x04); v != 0x0407 {
		t.Errorf("command = %#x", v)
	}
	// DOE registers go to the model, dword writes only.
	doe := cs.DOEOffset()
	_ = pci.WriteU32(cs, doe+0x10, 0xdeadbeef)
	_, _ = cs.WriteAt([]byte{0x34, 0x12}, int64(doe)+0x10) // a 16-bit write
	if len(regs.writes) != 1 || regs.writes[0] != [2]uint32{0x10, 0xdeadbeef} {
		t.Fatalf("DOE writes = %x", regs.writes)
	}
	regs.val = 0x80000000
	if v, _ := pci.ReadU32(cs, doe+0x0c); v != 0x80000000 || regs.lastRead != 0x0c {
		t.Fatalf("DOE status read %#x (reg %#x)", v, regs.lastRead)
	}
	if _, err := cs.WriteAt(make([]byte, 4), 0x102); !errors.Is(err, ErrConfigAccess) {
		t.Fatalf("unaligned write: %v", err)
	}
	if snap := cs.Snapshot(); len(snap) != pci.ConfigSize || snap[0] != 0x36 {
		t.Fatal("snapshot")
	}
	noDSN := testID
	noDSN.DSN = 0
	if cs2 := NewConfigSpace(noDSN, nil); cs2.DOEOffset() != 0x100 {
		t.Fatalf("without DSN the DOE cap is at %#x", cs2.DOEOffset())
	}
}

type fakeRegs struct {
	writes   [][2]uint32
	val      uint32
	lastRead uint16
}

func (f *fakeRegs) ReadReg(reg uint16) uint32 { f.lastRead = reg; return f.val }
func (f *fakeRegs) WriteReg(reg uint16, v uint32) {
	f.writes = append(f.writes, [2]uint32{uint32(reg), v})
}

func TestFreshKeysDiffer(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	a, err := NewChain(KeyEd25519, ChainOptions{Identity: testID, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewChain(KeyEd25519, ChainOptions{Identity: testID, Now: now, FreshKeys: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := verify(b, b.Anchor, now); err != nil {
		t.Fatal(err)
	}
	if string(a.Leaf().RawSubjectPublicKeyInfo) == string(b.Leaf().RawSubjectPublicKeyInfo) {
		t.Fatal("FreshKeys reused the published leaf key")
	}
}
