package emu

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/spdm"
)

func TestParseIdentity(t *testing.T) {
	dsn := uint64(0x1122334455667788)
	for _, tc := range []struct {
		in   string
		want Identity
	}{
		{"", DefaultIdentity},
		{"qemu-nvme", Identity{Vendor: 0x1b36, Device: 0x0010, Class: 0x010802, Revision: 0x02, SubVendor: 0x1af4, SubDevice: 0x1100}},
		{"dsn=none", func() Identity { id := DefaultIdentity; id.DSN = 0; return id }()},
		{"vendor=8086, device=0x0d58,class=020000,rev=1,subsystem=8086:0001,dsn=1122334455667788",
			Identity{Vendor: 0x8086, Device: 0x0d58, Class: 0x020000, Revision: 1, SubVendor: 0x8086, SubDevice: 1, DSN: dsn}},
	} {
		got, err := ParseIdentity(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseIdentity(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"vendor", "vendor=", "vendor=10000", "class=1000000", "rev=100", "subsystem=8086",
		"subsystem=8086:zz", "dsn=x", "colour=red", "vendor=1,vendor=2", "qemu-nvme,dsn=none"} {
		if id, err := ParseIdentity(bad); err == nil {
			t.Errorf("ParseIdentity(%q) = %+v, want an error", bad, id)
		}
	}
}

func TestParseVersionsAEADMultiKey(t *testing.T) {
	if v, err := ParseVersions("1.0, 1.3"); err != nil || len(v) != 2 || v[0] != spdm.Version10 || v[1] != spdm.Version13 {
		t.Errorf("ParseVersions = %v, %v", v, err)
	}
	if v, err := ParseVersions(""); err != nil || v != nil {
		t.Errorf("ParseVersions(\"\") = %v, %v", v, err)
	}
	if _, err := ParseVersions("1.2,1.4"); err == nil {
		t.Error("ParseVersions accepted 1.4")
	}
	for s, want := range map[string]spdm.AEADAlgo{"": 0, "aes-128-gcm": spdm.AEADAES128GCM, "aes-256-gcm": spdm.AEADAES256GCM,
		"chacha20-poly1305": spdm.AEADChaCha20Poly1305} {
		if a, err := ParseAEAD(s); err != nil || a != want {
			t.Errorf("ParseAEAD(%q) = %v, %v; want %v", s, a, err, want)
		}
	}
	if _, err := ParseAEAD("aes-gcm"); err == nil {
		t.Error("ParseAEAD accepted aes-gcm")
	}
	for s, want := range map[string]spdm.MultiKeyCap{"": spdm.MultiKeyNone, "only": spdm.MultiKeyOnly, "negotiated": spdm.MultiKeyNegotiated} {
		if m, err := ParseMultiKey(s); err != nil || m != want {
			t.Errorf("ParseMultiKey(%q) = %v, %v; want %v", s, m, err, want)
		}
	}
	if _, err := ParseMultiKey("both"); err == nil {
		t.Error("ParseMultiKey accepted both")
	}
}
