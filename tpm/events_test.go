package tpm

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
)

func TestEventsForLayoutAndTypes(t *testing.T) {
	ev := sampleEvidence()
	evs, err := EventsFor(ev, sampleDecision(true))
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []EventType{EvEFISPDMFirmwareBlob, EvEFISPDMFirmwareBlob, EvEFISPDMFirmwareConfig, EvEFISPDMFirmwareConfig, EvEFISPDMDeviceAuthority}
	if len(evs) != len(wantTypes)+1 {
		t.Fatalf("%d events", len(evs))
	}
	for i, wt := range wantTypes {
		if evs[i].ContentType != ContentPCClient || evs[i].Type != wt {
			t.Errorf("event %d: %s %v, want %v", i, evs[i].ContentType, evs[i].Type, wt)
		}
	}
	for i, m := range ev.Measurements {
		d, err := DecodeSPDMEvent(evs[i].Data)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want := &SPDMEvent{AuthState: AuthStateSuccess, DeviceType: 1, SubHeaderUID: jsonhex.U64(*ev.Identity.DSN), SPDMVersion: 0x12,
			MeasurementHash: 0x04, Index: m.Index, Spec: 1, DMTFType: m.Type, Raw: m.Raw, Value: m.Value,
			VendorID: 0x8086, DeviceID: 0x0d58, Revision: 2, Class: 0x020000, SubsystemVendor: 0x8086, Subsystem: 1}
		if diff := cmp.Diff(want, d); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}
	// Hand-checked header of the first event: signature, version 2, auth state,
	// total length, device type PCI, sub header type 0, sub header length.
	e := evs[0].Data
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

	a, err := DecodeAuthorityEvent(evs[4].Data)
	if err != nil {
		t.Fatal(err)
	}
	if a.VariableGUID != "b9c2b4f4-bf5f-462d-8adf-c5c70ac35dad" || a.Name != "devdb" || hex.EncodeToString(a.SignatureData) != ev.Chains[1].AnchorSHA256 {
		t.Errorf("authority %+v", a)
	}

	var v VerdictData
	if err := json.Unmarshal(evs[5].Data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Verdict != "allow" || v.BDF != "0000:3b:00.0" || v.Rule != "nic-fw-2.1" || v.DSN == nil || !bytes.Equal(v.EvidenceDigest, bytesOf(0xee, 32)) || v.Reasons == nil {
		t.Errorf("verdict %+v", v)
	}
}

func TestEventsForDenyAndUnverified(t *testing.T) {
	ev := sampleEvidence()
	ev.MeasurementsSignatureVerified = false
	ev.Chains = []attest.ChainState{{Slot: 0, Verified: false, ErrorKind: attest.ChainErrorUntrusted}}
	evs, err := EventsFor(ev, sampleDecision(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 { // 4 measurements, no authority, verdict
		t.Fatalf("%d events", len(evs))
	}
	d, _ := DecodeSPDMEvent(evs[0].Data)
	if d.AuthState != AuthStateFailInvalid {
		t.Errorf("auth state %d", d.AuthState)
	}
	var v VerdictData
	json.Unmarshal(evs[4].Data, &v)
	if v.Verdict != "deny" || len(v.Reasons) != 1 {
		t.Errorf("%+v", v)
	}
	// No SPDM at all: only the verdict.
	evs, _ = EventsFor(&attest.Evidence{}, sampleDecision(false))
	if len(evs) != 1 || evs[0].Kind != KindVerdict {
		t.Errorf("%+v", evs)
	}
	evs, _ = EventsFor(nil, sampleDecision(false))
	if len(evs) != 1 {
		t.Errorf("nil evidence: %d events", len(evs))
	}
	// Oversized measurement values are refused, not truncated.
	ev.Measurements = []attest.MeasurementBlock{{Index: 1, Spec: 1, Value: make([]byte, 0x10000)}}
	if _, err := EventsFor(ev, sampleDecision(false)); err == nil {
		t.Error("oversized measurement accepted")
	}
}

// Non-DMTF blocks keep their whole value.
func TestNonDMTFBlock(t *testing.T) {
	ev := sampleEvidence()
	ev.Measurements = []attest.MeasurementBlock{{Index: 9, Spec: 0, Value: []byte{1, 2, 3}}}
	evs, _ := EventsFor(ev, sampleDecision(true))
	d, err := DecodeSPDMEvent(evs[0].Data)
	if err != nil || evs[0].Type != EvEFISPDMFirmwareConfig || !bytes.Equal(d.Value, []byte{1, 2, 3}) || d.Spec != 0 {
		t.Fatalf("%+v %v", d, err)
	}
}

func TestDecodeSPDMEventRejectsPrefixes(t *testing.T) {
	evs, _ := EventsFor(sampleEvidence(), sampleDecision(true))
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
	l, err := ReadLog(path)
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
