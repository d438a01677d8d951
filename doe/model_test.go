package doe_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/vfio-gate/vfio-gate/doe"
	"github.com/vfio-gate/vfio-gate/internal/testutil/doetest"
	"github.com/vfio-gate/vfio-gate/pci"
)

func TestModelRegisterSemantics(t *testing.T) {
	m := doe.NewModel([]doe.Feature{doe.FeatureCMA}, echo)
	st := func() uint32 { return m.ReadReg(doe.RegStatus) }

	if h := m.ReadReg(0); h&0xffff != 0x2E || (h>>16)&0xf != 1 {
		t.Fatalf("cap header %#x", h)
	}
	// A request whose DW count differs from its Length is discarded.
	m.WriteReg(doe.RegWrite, 0x00010001)
	m.WriteReg(doe.RegWrite, 4) // Length 4 DW, only 3 written
	m.WriteReg(doe.RegWrite, 0xdeadbeef)
	m.WriteReg(doe.RegCtrl, doe.CtrlGo)
	if st() != 0 || m.Stats().Discarded != 1 {
		t.Fatalf("status %#x stats %+v after a short request", st(), m.Stats())
	}
	// Read Data without Data Object Ready reads 0; popping sets Error.
	if v := m.ReadReg(doe.RegRead); v != 0 {
		t.Fatalf("read mailbox without DOR = %#x", v)
	}
	m.WriteReg(doe.RegRead, 0)
	if st()&doe.StatusErr == 0 {
		t.Fatal("pop without DOR did not set Error")
	}
	m.WriteReg(doe.RegCtrl, doe.CtrlAbort)
	if st() != 0 {
		t.Fatalf("status %#x after abort", st())
	}
	// A good request: header, 1 DW, Go.
	m.WriteReg(doe.RegWrite, 0x00010001)
	m.WriteReg(doe.RegWrite, 3)
	m.WriteReg(doe.RegWrite, 0x04030201)
	m.WriteReg(doe.RegCtrl, doe.CtrlGo)
	if st() != doe.StatusDOR {
		t.Fatalf("status %#x, want DOR", st())
	}
	var got []uint32
	for st()&doe.StatusDOR != 0 {
		got = append(got, m.ReadReg(doe.RegRead))
		m.WriteReg(doe.RegRead, 0)
	}
	if len(got) != 3 || got[0] != 0x00010001 || got[1] != 3 || got[2] != 0x01020304 {
		t.Fatalf("response %#x", got)
	}
	// Control reads as 0 (Abort and Go are write-only).
	if m.ReadReg(doe.RegCtrl) != 0 || m.ReadReg(doe.RegCap) != 0 {
		t.Fatal("control/capabilities not 0")
	}
}

func TestTestConfigOnlyDwordAccessesReachTheMailbox(t *testing.T) {
	m := doe.NewModel(nil, nil)
	cfg := doetest.NewConfig(m)
	// A 2-byte write to Control (Abort) is ignored, a 4-byte write is not.
	if _, err := cfg.WriteAt([]byte{1, 0}, 0x108); err != nil { // a 2-byte write
		t.Fatal(err)
	}
	if m.Stats().Aborts != 0 || m.Stats().Writes != 0 {
		t.Fatalf("2-byte write reached the model: %+v", m.Stats())
	}
	if err := pci.WriteU32(cfg, 0x108, doe.CtrlAbort); err != nil {
		t.Fatal(err)
	}
	if m.Stats().Aborts != 1 {
		t.Fatal("4-byte abort did not reach the model")
	}
	v, err := pci.ReadU16(cfg, 0)
	if err != nil || v != doetest.VendorID {
		t.Fatalf("vendor %#x %v", v, err)
	}
	caps, err := pci.Capabilities(cfg)
	if err != nil || len(caps) != 1 || caps[0].ID != pci.CapIDPCIExpress {
		t.Fatalf("std caps %v %v", caps, err)
	}
	if _, err := cfg.ReadAt(make([]byte, 8), pci.ConfigSize-4); err == nil {
		t.Fatal("read past 4 KiB succeeded")
	}
}

func TestObjectCodec(t *testing.T) {
	obj, err := doe.EncodeObject(doe.FeatureCXLCDAT, []byte{1, 2, 3, 4, 5})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x98, 0x1e, 0x02, 0, 4, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0}
	if !bytes.Equal(obj, want) {
		t.Fatalf("EncodeObject = % x", obj)
	}
	f, p, err := doe.DecodeObject(obj, 0)
	if err != nil || f != doe.FeatureCXLCDAT || !bytes.Equal(p, pad([]byte{1, 2, 3, 4, 5})) {
		t.Fatalf("DecodeObject = %v %x %v", f, p, err)
	}
	for k := range len(obj) {
		if _, _, err := doe.DecodeObject(obj[:k], 0); err == nil {
			t.Fatalf("prefix of %d bytes decoded", k)
		}
	}
	if _, _, err := doe.DecodeObject(obj, 4); err == nil {
		t.Fatal("payload over the limit decoded")
	}
	big := binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint32(nil, 1), 0) // Length 0 = 2^18 DW
	var pe *doe.ProtocolError
	if _, _, err := doe.DecodeObject(big, 0); !errors.As(err, &pe) || pe.Field != "Length" {
		t.Fatalf("length-0 header on 8 bytes: %v", err)
	}
	if _, err := doe.EncodeObject(doe.FeatureCMA, make([]byte, doe.MaxPayload+1)); !errors.Is(err, doe.ErrTooLarge) {
		t.Fatal("oversize payload encoded")
	}
}
