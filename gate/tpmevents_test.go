package gate_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/gate"
	"github.com/vfio-gate/vfio-gate/internal/jsonhex"
	"github.com/vfio-gate/vfio-gate/tpm"
)

func sampleEvidence() *attest.Evidence {
	dsn := uint64(0x0011223344556677)
	anchor := sha256.Sum256([]byte("test root"))
	return &attest.Evidence{
		Identity: attest.Identity{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, SubsystemVendorID: 0x8086,
			SubsystemID: 0x0001, Class: 0x020000, Revision: 2, DSN: &dsn},
		HasCMA:     true,
		Version:    "1.2",
		Algorithms: attest.Algorithms{BaseHash: "sha-384", MeasurementHash: "sha-384"},
		Chains: []attest.ChainState{
			{Slot: 1, Verified: false, Error: "x"},
			{Slot: 0, Verified: true, AnchorSHA256: hex.EncodeToString(anchor[:])},
		},
		Measurements: []attest.MeasurementBlock{
			{Index: 1, Type: 0, TypeName: "immutable-rom", Value: bytesOf(0x11, 48), Spec: 1},
			{Index: 2, Type: 1, TypeName: "mutable-firmware", Value: bytesOf(0x22, 48), Spec: 1},
			{Index: 3, Type: 3, TypeName: "firmware-config", Value: bytesOf(0x33, 48), Spec: 1},
			{Index: 4, Type: 5, Raw: true, TypeName: "device-mode", Value: []byte{1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, Spec: 1},
		},
		MeasurementsSignatureVerified: true,
	}
}

func sampleDecision(allow bool) tpm.Decision {
	dsn := uint64(0x0011223344556677)
	d := tpm.Decision{BDF: "0000:3b:00.0", VendorID: 0x8086, DeviceID: 0x0d58, DSN: &dsn, Rule: "nic-fw-2.1", Allow: allow,
		Mode: "enforce", EvidenceDigest: bytesOf(0xee, 32), Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)}
	if !allow {
		d.Reasons = []string{"measurement-mismatch"}
	}
	return d
}

func bytesOf(b byte, n int) []byte { return []byte(strings.Repeat(string([]byte{b}), n)) }

func TestTPMEventsForLayoutAndTypes(t *testing.T) {
	ev := sampleEvidence()
	evs, err := gate.EventsFor(ev, sampleDecision(true))
	if err != nil {
		t.Fatal(err)
	}
	wantTypes := []tpm.EventType{tpm.EvEFISPDMFirmwareBlob, tpm.EvEFISPDMFirmwareBlob, tpm.EvEFISPDMFirmwareConfig, tpm.EvEFISPDMFirmwareConfig, tpm.EvEFISPDMDeviceAuthority}
	if len(evs) != len(wantTypes)+1 {
		t.Fatalf("%d events", len(evs))
	}
	for i, wt := range wantTypes {
		if evs[i].ContentType != tpm.ContentPCClient || evs[i].Type != wt {
			t.Errorf("event %d: %s %v, want %v", i, evs[i].ContentType, evs[i].Type, wt)
		}
	}
	for i, m := range ev.Measurements {
		d, err := tpm.DecodeSPDMEvent(evs[i].Data)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		want := &tpm.SPDMEvent{AuthState: tpm.AuthStateSuccess, DeviceType: 1, SubHeaderUID: jsonhex.U64(*ev.Identity.DSN), SPDMVersion: 0x12,
			MeasurementHash: 0x04, Index: m.Index, Spec: 1, DMTFType: m.Type, Raw: m.Raw, Value: tpm.HexBytes(m.Value),
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

	a, err := tpm.DecodeAuthorityEvent(evs[4].Data)
	if err != nil {
		t.Fatal(err)
	}
	if a.VariableGUID != "b9c2b4f4-bf5f-462d-8adf-c5c70ac35dad" || a.Name != "devdb" || hex.EncodeToString(a.SignatureData) != ev.Chains[1].AnchorSHA256 {
		t.Errorf("authority %+v", a)
	}

	var v tpm.VerdictData
	if err := json.Unmarshal(evs[5].Data, &v); err != nil {
		t.Fatal(err)
	}
	if v.Verdict != "allow" || v.BDF != "0000:3b:00.0" || v.Rule != "nic-fw-2.1" || v.DSN == nil || !bytes.Equal(v.EvidenceDigest, bytesOf(0xee, 32)) || v.Reasons == nil {
		t.Errorf("verdict %+v", v)
	}
}

func TestTPMEventsForDenyAndUnverified(t *testing.T) {
	ev := sampleEvidence()
	ev.MeasurementsSignatureVerified = false
	ev.Chains = []attest.ChainState{{Slot: 0, Verified: false, ErrorKind: attest.ChainErrorUntrusted}}
	evs, err := gate.EventsFor(ev, sampleDecision(false))
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 5 { // 4 measurements, no authority, verdict
		t.Fatalf("%d events", len(evs))
	}
	d, _ := tpm.DecodeSPDMEvent(evs[0].Data)
	if d.AuthState != tpm.AuthStateFailInvalid {
		t.Errorf("auth state %d", d.AuthState)
	}
	var v tpm.VerdictData
	json.Unmarshal(evs[4].Data, &v)
	if v.Verdict != "deny" || len(v.Reasons) != 1 {
		t.Errorf("%+v", v)
	}
	// No SPDM at all: only the verdict.
	evs, _ = gate.EventsFor(&attest.Evidence{}, sampleDecision(false))
	if len(evs) != 1 || evs[0].Kind != tpm.KindVerdict {
		t.Errorf("%+v", evs)
	}
	evs, _ = gate.EventsFor(nil, sampleDecision(false))
	if len(evs) != 1 {
		t.Errorf("nil evidence: %d events", len(evs))
	}
	// Oversized measurement values are refused, not truncated.
	ev.Measurements = []attest.MeasurementBlock{{Index: 1, Spec: 1, Value: make([]byte, 0x10000)}}
	if _, err := gate.EventsFor(ev, sampleDecision(false)); err == nil {
		t.Error("oversized measurement accepted")
	}
}

// Non-DMTF blocks keep their whole value.
func TestTPMEventsNonDMTFBlock(t *testing.T) {
	ev := sampleEvidence()
	ev.Measurements = []attest.MeasurementBlock{{Index: 9, Spec: 0, Value: []byte{1, 2, 3}}}
	evs, _ := gate.EventsFor(ev, sampleDecision(true))
	d, err := tpm.DecodeSPDMEvent(evs[0].Data)
	if err != nil || evs[0].Type != tpm.EvEFISPDMFirmwareConfig || !bytes.Equal(d.Value, []byte{1, 2, 3}) || d.Spec != 0 {
		t.Fatalf("%+v %v", d, err)
	}
}
