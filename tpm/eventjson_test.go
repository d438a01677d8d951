package tpm

import (
	"encoding/json"
	"strings"
	"testing"
)

// New verdict and release records hold IDs and the DSN as hex strings
// (docs/json.md); records from older logs (numbers) still decode.
func TestEventIDsHexAndOldRecords(t *testing.T) {
	dsn := uint64(0x00c0ffee00001234)
	ev := VerdictEvent(Decision{BDF: "0000:01:00.0", VendorID: 0x1b36, DeviceID: 0x0010, DSN: &dsn, Allow: true})
	for _, want := range []string{`"vendor_id":"0x1b36"`, `"device_id":"0x0010"`, `"dsn":"0x00c0ffee00001234"`} {
		if !strings.Contains(string(ev.Data), want) {
			t.Errorf("verdict data %s lacks %s", ev.Data, want)
		}
	}
	old := `{"bdf":"0000:01:00.0","vendor_id":6966,"device_id":16,"dsn":54324593195749940,"rule":"r","verdict":"allow","mode":"enforce","reasons":[],"evidence_digest":"00","confidential":false}`
	var v VerdictData
	if err := json.Unmarshal([]byte(old), &v); err != nil || v.VendorID != 0x1b36 || v.DeviceID != 0x10 || v.DSN == nil || uint64(*v.DSN) != dsn {
		t.Fatalf("old verdict record: %+v %v", v, err)
	}
	// The SPDM event's sub-header UID is the DSN: a string too.
	b, err := json.Marshal(SPDMEvent{SubHeaderUID: 0xfedcba9876543210})
	if err != nil || !strings.Contains(string(b), `"sub_header_uid":"0xfedcba9876543210"`) {
		t.Errorf("SPDM event JSON %s %v", b, err)
	}
	var r Release
	if err := json.Unmarshal([]byte(`{"bdf":"0000:01:00.0","vendor_id":32902,"device_id":4307}`), &r); err != nil || r.VendorID != 0x8086 || r.DeviceID != 0x10d3 {
		t.Fatalf("old release record: %+v %v", r, err)
	}
}
