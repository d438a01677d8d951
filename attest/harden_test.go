package attest_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/emu"
	"github.com/vfio-gate/vfio-gate/policy"
)

// A socket device whose chain does not verify must not get to choose its
// identity (and so the policy rule) through the CMA SAN of that unverified
// leaf: anyone can mint a self-signed leaf naming any vendor and device.
func TestTransportUnverifiedSANIsNotIdentity(t *testing.T) {
	d, err := emu.New(emu.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// No anchors: the chain is untrusted.
	ev, err := attest.Transport(context.Background(), d.Direct(), attest.Identity{Socket: "direct"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Chains) == 0 || ev.Chains[0].Verified || ev.Chains[0].CMASAN == nil {
		t.Fatalf("setup: want an unverified chain with a CMA SAN, got %+v", ev.Chains)
	}
	if ev.Identity.FromCMASAN || ev.Identity.VendorID != 0 || ev.Identity.DeviceID != 0 {
		t.Fatalf("identity taken from an unverified leaf: %+v", ev.Identity)
	}
	// The consequence that matters: a rule without spdm (the operator's
	// "allow this device unattested") must not be reachable by a claim.
	id := d.Identity()
	pol, err := policy.Parse([]byte(fmt.Sprintf(`version: 1
rules:
  - {name: trusted-unattested, match: {vendor: 0x%04x, device: 0x%04x}}
`, id.Vendor, id.Device)), "p.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if v := pol.Evaluate(ev, policy.Input{}); v.Allow {
		t.Fatalf("allowed by rule %q on a claimed identity: %+v", v.Rule, v.Reasons)
	}
}
