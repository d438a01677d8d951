package policy_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// FuzzEvaluateFailClosed mutates good evidence in ways a hostile device or a
// broken attestation could produce and checks, in enforce mode for a
// confidential VM (so nothing is allowed unattested), that an allow always
// rests on every fact the matching rule demands.
func FuzzEvaluateFailClosed(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0, 1})
	f.Add([]byte{3, 0, 7, 2, 12, 1})
	f.Add([]byte{5, 9, 6, 1, 14, 3, 15, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 64 {
			return
		}
		p := newPKI(t)
		pol := p.full("enforce")
		ev := p.goodEvidence()
		for i := 0; i+1 < len(ops); i += 2 {
			mutate(ev, ops[i], ops[i+1])
		}
		v := pol.Evaluate(ev, policy.Input{Confidential: true, Now: now})
		if !v.Allow {
			if v.Decision != policy.DecisionDeny || len(v.Reasons) == 0 {
				t.Fatalf("deny without a reason: %+v", v)
			}
			return
		}
		if len(v.Reasons) != 0 || v.Rule != "acme-nic" {
			t.Fatalf("allow with reasons %v or rule %q", v.Reasons, v.Rule)
		}
		var c *attest.ChainState
		for i := range ev.Chains {
			if ev.Chains[i].Slot == ev.Bundle.Slot {
				c = &ev.Chains[i]
				break
			}
		}
		var idx1 []attest.MeasurementBlock
		for _, b := range ev.Measurements {
			if b.Index == 1 {
				idx1 = append(idx1, b)
			}
		}
		switch {
		case ev.Failure != nil:
			t.Fatalf("allowed with failure %+v", ev.Failure)
		case !ev.HasCMA:
			t.Fatal("allowed without CMA")
		case c == nil || !c.Verified || !strings.EqualFold(c.AnchorSHA256, p.rootSHA):
			t.Fatalf("allowed without a chain verified to the rule's anchor: %+v", c)
		case c.CMASAN == nil || c.CMASAN.VendorID != ev.Identity.VendorID || c.CMASAN.DeviceID != ev.Identity.DeviceID:
			t.Fatalf("allowed without a matching CMA SAN: %+v", c.CMASAN)
		case ev.Session == nil || !ev.Session.Established:
			t.Fatal("allowed without the required session")
		case !ev.MeasurementsSignatureVerified:
			t.Fatal("allowed with unsigned measurements")
		case len(idx1) != 1 || idx1[0].Spec&1 == 0 ||
			!(bytes.Equal(idx1[0].Value, fwDigest[:]) || bytes.Equal(idx1[0].Value, fwDigest2[:])):
			t.Fatalf("allowed with measurement 1 = %+v", idx1)
		case ev.TDISP == nil || (ev.TDISP.State != "CONFIG_LOCKED" && ev.TDISP.State != "RUN") || ev.TDISP.LockedFor == "":
			t.Fatalf("allowed with TDISP %+v", ev.TDISP)
		case ev.Algorithms.BaseAsym != "ecdsa-p384" || ev.Algorithms.BaseHash != "sha-384":
			t.Fatalf("allowed with algorithms %+v", ev.Algorithms)
		}
	})
}

// mutate applies one change selected by op (argument a) to ev.
func mutate(ev *attest.Evidence, op, a byte) {
	kinds := []attest.Kind{attest.FailNoDOE, attest.FailNoCMA, attest.FailLockdown, attest.FailPermission, attest.FailMailboxBusy,
		attest.FailMailboxOwned, attest.FailTimeout, attest.FailProtocol, attest.FailSignature, attest.FailChain, attest.FailSession,
		attest.FailTDISP, attest.FailUnknown, attest.Kind(200)}
	c := func() *attest.ChainState {
		if len(ev.Chains) == 0 {
			return nil
		}
		return &ev.Chains[int(a)%len(ev.Chains)]
	}
	switch op % 20 {
	case 0:
		ev.Failure = &attest.Failure{Step: "x", Kind: kinds[int(a)%len(kinds)], Message: "m"}
	case 1:
		ev.ChallengeVerified = a&1 != 0
	case 2:
		ev.MeasurementsSignatureVerified = a&1 != 0
	case 3:
		if a&1 != 0 {
			ev.Session = nil
		} else if ev.Session != nil {
			ev.Session.Established = a&2 != 0
		}
	case 4:
		if c := c(); c != nil {
			c.Verified = a&1 != 0
		}
	case 5:
		if c := c(); c != nil {
			c.AnchorSHA256 = strings.ToUpper(c.AnchorSHA256[:int(a)%len(c.AnchorSHA256)+1])
		}
	case 6:
		ev.Bundle.Slot = a % 9
	case 7:
		if len(ev.Measurements) > 0 {
			i := int(a) % len(ev.Measurements)
			ev.Measurements = append(ev.Measurements[:i:i], ev.Measurements[i+1:]...)
		}
	case 8:
		if len(ev.Measurements) > 0 {
			m := &ev.Measurements[int(a)%len(ev.Measurements)]
			m.Value = append(attest.HexBytes{}, m.Value...)
			if len(m.Value) > 0 {
				m.Value[int(a)%len(m.Value)] ^= 1 << (a % 8)
			}
		}
	case 9:
		if len(ev.Measurements) > 0 {
			m := &ev.Measurements[int(a)%len(ev.Measurements)]
			m.Spec, m.Raw, m.Type = a&3, a&4 != 0, (a>>3)%12
		}
	case 10:
		if len(ev.Measurements) > 0 {
			ev.Measurements = append(ev.Measurements, ev.Measurements[int(a)%len(ev.Measurements)])
		}
	case 11:
		ev.Version = []string{"", "1.0", "1.1", "1.2", "1.3", "2.0", "x", "1.10"}[a%8]
	case 12:
		if ev.TDISP != nil && a&1 != 0 {
			ev.TDISP.State = []string{"CONFIG_UNLOCKED", "ERROR", "", "RUN"}[(a>>1)%4]
			if a&8 != 0 {
				ev.TDISP.LockedFor = ""
			}
		} else {
			ev.TDISP = nil
		}
	case 13:
		if c := c(); c != nil {
			if a&1 != 0 {
				c.CMASAN = nil
			} else if c.CMASAN != nil {
				s := *c.CMASAN
				s.DeviceID ^= uint16(a)
				c.CMASAN = &s
			}
		}
	case 14:
		if c := c(); c != nil {
			d := *c
			d.Slot = a % 9
			d.Verified = !d.Verified
			ev.Chains = append(ev.Chains, d)
		}
	case 15:
		ev.Chains = nil
	case 16:
		ev.HasCMA = a&1 != 0
	case 17:
		ev.Algorithms.BaseAsym = []string{"ecdsa-p256", "ecdsa-p384", "", "rsassa-3072"}[a%4]
	case 18:
		ev.Algorithms.MeasurementHash = []string{"sha-256", "sha-384", "", "raw-bit-stream", "sha3-384"}[a%5]
	case 19:
		ev.Identity.DeviceID = []uint16{0x5678, 0x5679, 0x1}[a%3]
	}
}
