package policy

import (
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
)

// Under deny-unattested, a device the host could not look at is denied for
// what stopped the host (lockdown, permission, an owner of the mailbox), not
// with no-cma: whether it has CMA is unknown.
func TestDenyUnattestedNamesHostBlocker(t *testing.T) {
	p, err := Parse([]byte("version: 1\nmode: enforce\ndefaults: {confidential: deny-unattested, non_confidential: deny-unattested}\n"), "p.yaml", &LoadOptions{SkipPermissionCheck: true})
	if err != nil {
		t.Fatal(err)
	}
	cases := map[attest.Kind]Code{
		attest.FailLockdown: CodeLockdown, attest.FailPermission: CodePermission,
		attest.FailMailboxOwned: CodeMailboxOwned, attest.FailMailboxBusy: CodeMailboxBusy,
		attest.FailNoDOE: CodeNoCMA, attest.FailNoCMA: CodeNoCMA,
	}
	for kind, want := range cases {
		ev := &attest.Evidence{Identity: attest.Identity{VendorID: 0x8086, DeviceID: 0x0d93},
			Failure: &attest.Failure{Step: "doe", Kind: kind, Message: "x"}}
		for _, conf := range []bool{true, false} {
			v := p.Evaluate(ev, Input{Confidential: conf, Now: time.Now()})
			if v.Allow || len(v.Reasons) != 1 || v.Reasons[0].Code != want {
				t.Errorf("%s (confidential=%v): %s %+v, want deny %s", kind, conf, v.Decision, v.Reasons, want)
			}
		}
	}
}
