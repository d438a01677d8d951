package attest

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// Identity, CMA SAN and mailbox offsets are hex strings in JSON
// (docs/json.md); evidence JSON round-trips, and the numeric form of older
// evidence still decodes.
func TestEvidenceJSONForms(t *testing.T) {
	dsn, ssid, ssvid, grp := uint64(0x00c0ffee00001234), uint16(0x1100), uint16(0x1af4), 5
	ev := Evidence{
		Identity: Identity{BDF: "0000:3a:00.1", VendorID: 0x1b36, DeviceID: 0x10, SubsystemVendorID: 0x1af4, SubsystemID: 0x1100,
			Class: 0x010802, Revision: 2, DSN: &dsn, IOMMUGroup: &grp},
		DOE:    []Mailbox{{Offset: 0x150, Features: []string{"cma-spdm"}}},
		Chains: []ChainState{{Digest: "ab", CMASAN: &CMASAN{Raw: "x", VendorID: 0x1b36, DeviceID: 0x10, Class: 0x010802, Revision: 2, SubsystemVendorID: &ssvid, SubsystemID: &ssid, DSN: &dsn}}},
		Bundle: Bundle{ChallengeNonce: HexBytes{0xde, 0xad}},
	}
	b, err := json.Marshal(&ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"vendor_id":"0x1b36"`, `"device_id":"0x0010"`, `"subsystem_id":"0x1100"`, `"class":"0x010802"`,
		`"revision":"0x02"`, `"dsn":"0x00c0ffee00001234"`, `"offset":"0x0150"`, `"challenge_nonce":"dead"`, `"iommu_group":5`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("evidence JSON lacks %s: %s", want, b)
		}
	}
	if strings.Contains(string(b), "subsystem_device_id") {
		t.Errorf("evidence JSON has subsystem_device_id: %s", b)
	}
	var back Evidence
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back.Identity, ev.Identity) ||
		!reflect.DeepEqual(back.DOE, ev.DOE) || !reflect.DeepEqual(back.Chains[0].CMASAN, ev.Chains[0].CMASAN) {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, back.Identity, ev.Identity)
	}
	old := `{"identity":{"bdf":"0000:3a:00.1","vendor_id":6966,"device_id":16,"subsystem_vendor_id":6900,"subsystem_id":4352,"class":67586,"revision":2,"dsn":54324593195749940},"doe":[{"offset":336,"features":[]}]}`
	var o Evidence
	if err := json.Unmarshal([]byte(old), &o); err != nil || o.Identity.VendorID != 0x1b36 || o.Identity.Class != 0x010802 ||
		o.Identity.DSN == nil || *o.Identity.DSN != dsn || o.DOE[0].Offset != 0x150 {
		t.Fatalf("old evidence: %+v %v", o.Identity, err)
	}
}
