package policy_test

import (
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// TestNeedsFor: what attestation must gather is what the rules that may
// still match need: DSN rules before the first outright match count (the
// DSN comes with attestation), later rules do not, and a socket device
// with no IDs may match any rule.
func TestNeedsFor(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad(`version: 1
rules:
  - name: locked-by-dsn
    match: {vendor: 0x1234, dsn: 7}
    spdm: {trust_anchors: [` + p.rootPEM + `]}
    tdisp: {require_lock: true}
  - name: session
    match: {vendor: 0x1234, device: 0x0001}
    spdm: {trust_anchors: [` + p.rootPEM + `], require_session: true}
  - name: plain
    match: {vendor: 0x1234}
    spdm: {trust_anchors: [` + p.rootPEM + `]}
  - name: locked
    match: {vendor: 0x5678}
    spdm: {trust_anchors: [` + p.rootPEM + `]}
    tdisp: {require_lock: true}
  - name: late-lock
    match: {vendor: 0x1234, device: 0x0002}
    spdm: {trust_anchors: [` + p.rootPEM + `]}
    tdisp: {require_lock: true}
`)
	for _, c := range []struct {
		name string
		id   attest.Identity
		want policy.Needs
	}{
		{"dsn rule may match, then session", attest.Identity{VendorID: 0x1234, DeviceID: 0x0001}, policy.Needs{Session: true, TDISP: true}},
		{"known DSN that is not the rule's", attest.Identity{VendorID: 0x1234, DeviceID: 0x0001, DSN: u64(8)}, policy.Needs{Session: true}},
		{"plain shadows the later lock rule", attest.Identity{VendorID: 0x1234, DeviceID: 0x0002, DSN: u64(8)}, policy.Needs{}},
		{"lock rule", attest.Identity{VendorID: 0x5678, DeviceID: 0x0009}, policy.Needs{Session: true, TDISP: true}},
		{"no rule", attest.Identity{VendorID: 0x9999, DeviceID: 0x0001}, policy.Needs{}},
		{"socket device: every rule", attest.Identity{}, policy.Needs{Session: true, TDISP: true}},
	} {
		if got := pol.NeedsFor(c.id); got != c.want {
			t.Errorf("%s: NeedsFor = %+v, want %+v", c.name, got, c.want)
		}
	}
	only := p.mustLoad(`version: 1
rules:
  - name: plain
    match: {vendor: 0x1234}
    spdm: {trust_anchors: [` + p.rootPEM + `]}
`)
	if got := only.NeedsFor(attest.Identity{}); got != (policy.Needs{}) {
		t.Errorf("no rule needs anything: %+v", got)
	}
}
