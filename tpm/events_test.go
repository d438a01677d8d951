package tpm

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The encoders' output decodes back to their input, and the first event's
// header is checked by hand: signature, version 2, auth state, total length,
// device type PCI, sub header type 0, sub header length.
func TestEncodeSPDMEventLayout(t *testing.T) {
	for i, in := range sampleSPDMEvents() {
		e, err := EncodeSPDMEvent(in)
		if err != nil {
			t.Fatal(err)
		}
		if e.Type != SPDMEventType(in.Spec, in.DMTFType) {
			t.Errorf("event %d: type %v", i, e.Type)
		}
		d, err := DecodeSPDMEvent(e.Data)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if diff := cmp.Diff(in, d); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}
	e := sampleEvents(true)[0].Data
	total := 44 + 8 + 8 + 4 + 3 + 48 + 16
	wantHdr := "5350444d204465766963652053656332" + "0200" + "00" + "00" +
		hex.EncodeToString([]byte{byte(total), 0, 0, 0}) + "01000000" + "00000000" +
		hex.EncodeToString([]byte{8 + 4 + 3 + 48, 0, 0, 0}) + "7766554433221100" + "0000000000000000" +
		"1200" + "01" + "00" + "04000000" + "01" + "01" + "3300" + "00" + "3000"
	if got := hex.EncodeToString(e[:len(wantHdr)/2]); got != wantHdr || len(e) != total {
		t.Errorf("header\n got %s\nwant %s (len %d want %d)", got, wantHdr, len(e), total)
	}
	if pci := hex.EncodeToString(e[len(e)-16:]); pci != "000010008680580d02000002"+"86800100" {
		t.Errorf("PCI context %s", pci)
	}
	// Oversized values and other device types are refused, not truncated.
	big := *sampleSPDMEvents()[0]
	big.Value = make([]byte, 0x10000)
	if _, err := EncodeSPDMEvent(&big); err == nil {
		t.Error("oversized measurement accepted")
	}
	other := *sampleSPDMEvents()[0]
	other.DeviceType = 2
	if _, err := EncodeSPDMEvent(&other); err == nil {
		t.Error("device type 2 accepted")
	}
	anchor := bytesOf(0xab, 32)
	ae, err := NewAuthorityEvent(anchor)
	if err != nil {
		t.Fatal(err)
	}
	a, err := DecodeAuthorityEvent(ae.Data)
	if err != nil || a.VariableGUID != "b9c2b4f4-bf5f-462d-8adf-c5c70ac35dad" || a.Name != "devdb" || !bytes.Equal(a.SignatureData, anchor) {
		t.Errorf("authority %+v %v", a, err)
	}
	if _, err := NewAuthorityEvent(anchor[:31]); err == nil {
		t.Error("31-byte anchor digest accepted")
	}
}

func TestDecodeSPDMEventRejectsPrefixes(t *testing.T) {
	evs := sampleEvents(true)
	for _, e := range evs[:4] {
		for n := 0; n < len(e.Data); n++ {
			if _, err := DecodeSPDMEvent(e.Data[:n]); err == nil {
				t.Fatalf("prefix of %d/%d bytes decoded", n, len(e.Data))
			}
		}
		if _, err := DecodeSPDMEvent(append(append([]byte{}, e.Data...), 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
}

func TestDescribe(t *testing.T) {
	_, tp := openSimT(t)
	r, path := newRec(t, tp, DefaultPCR)
	recordSample(t, r, false)
	r.Record(t.Context(), ReleaseEvent(Release{BDF: "0000:3b:00.0", Domain: "vm1"}), TDISPStateEvent(TDISPState{BDF: "0000:3b:00.0", From: "RUN", To: "ERROR"}))
	l, err := ReadBoot(path, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"baseline (boot), TPM resetCount",
		"8086:0d58 block 1 immutable-rom auth=success value 1111111111111111… (48 bytes)",
		"block 2 mutable-firmware",
		"block 3 firmware-config",
		"block 4 device-mode (raw)",
		"trust anchor sha256 ",
		"0000:3b:00.0 8086:0d58 DENY rule nic-fw-2.1 (enforce) reasons measurement-mismatch",
		"0000:3b:00.0 released from vm1",
		"0000:3b:00.0 TDISP RUN -> ERROR",
	}
	if len(l.Records) != len(want) {
		t.Fatalf("%d records", len(l.Records))
	}
	for i, rec := range l.Records {
		d := Describe(rec)
		if !strings.Contains(d.Summary, want[i]) || d.DecodeError != "" || d.Event == nil {
			t.Errorf("record %d: %q (%s), want %q", i+1, d.Summary, d.DecodeError, want[i])
		}
	}
	bad := *l.Records[1]
	bad.Event.Data = bad.Event.Data[:10]
	if d := Describe(&bad); d.DecodeError == "" {
		t.Error("truncated SPDM event described without error")
	}
}
