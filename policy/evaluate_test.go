package policy_test

import (
	"crypto/sha256"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// fullPolicy uses every field. %[1]s root anchor, %[2]s CRLs block, %[3]s mode.
const fullPolicy = `version: 1
mode: %[3]s
tpm: {pcr: 14}
defaults:
  confidential: deny-unattested
  non_confidential: allow-unattested
iommu_group: {exempt_classes: [0x0604]}
rules:
  - name: acme-nic
    match: {vendor: 0x1234, device: [0x5678, 0x5679], subsystem_vendor: 0x1234, subsystem_device: 0x0001, class: {value: 0x020000, mask: 0xff0000}}
    spdm:
      min_version: "1.2"
      algorithms: {asym: [ecdsa-p384], hash: [sha-384]}
      trust_anchors: [%[1]s]
%[2]s      require_session: true
      require_cma_san: true
    measurements:
      require_signed: true
      reference:
        1: [sha384:%[4]x, sha384:%[5]x]
      min_svn: 7
      forbid_debug_mode: true
    tdisp: {require_lock: true}
  - name: lab-bridge
    match: {vendor: 0x8086, class: 0x060400}
`

func (p *pki) full(mode string, crls ...string) *policy.Policy {
	p.t.Helper()
	block := ""
	if len(crls) > 0 {
		block = "      crls: [" + strings.Join(crls, ", ") + "]\n"
	}
	return p.mustLoad(fmt.Sprintf(fullPolicy, p.rootPEM, block, mode, fwDigest, fwDigest2))
}

func codes(v policy.Verdict) []policy.Code {
	out := []policy.Code{}
	for _, r := range v.Reasons {
		out = append(out, r.Code)
	}
	return out
}

func TestEvaluateAllowsGoodDevice(t *testing.T) {
	p := newPKI(t)
	pol := p.full("enforce")
	v := pol.Evaluate(p.goodEvidence(), policy.Input{Confidential: true, Now: now})
	if !v.Allow || v.Decision != "allow" || v.Rule != "acme-nic" || len(v.Reasons) != 0 || v.WouldDeny {
		t.Fatalf("verdict %+v", v)
	}
	for _, c := range v.Checks {
		if !c.Pass {
			t.Errorf("check %+v failed on a good device", c)
		}
	}
	want := []string{"rule", "cma", "spdm.min_version", "spdm.algorithms.asym", "spdm.algorithms.hash",
		"spdm.algorithms.hash (measurements)", "chain", "chain.validity", "cma_san", "authentication",
		"spdm.require_session", "measurements.require_signed", "measurements.reference[1]", "measurements.min_svn",
		"measurements.forbid_debug_mode", "tdisp.require_lock"}
	var got []string
	for _, c := range v.Checks {
		got = append(got, c.Name)
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("checks (-want +got):\n%s", d)
	}
}

// reasonCodeCases are evidence changes and the reason codes each must give
// under the full enforce policy (see TestEvaluateReasonCodes).
var reasonCodeCases = []reasonCodeCase{
	{name: "no-cma", mod: func(e *attest.Evidence) { e.HasCMA = false }, want: []policy.Code{"no-cma"}},
	{name: "failure no-doe", mod: func(e *attest.Evidence) { e.HasCMA = false; fail(attest.FailNoDOE)(e) }, want: []policy.Code{"no-cma"}},
	{name: "chain untrusted", mod: func(e *attest.Evidence) {
		e.Chains[0].Verified, e.Chains[0].ErrorKind, e.Chains[0].Error = false, attest.ChainErrorUntrusted, "unknown root"
	}, want: []policy.Code{"chain-untrusted"}},
	{name: "no chain for slot", mod: func(e *attest.Evidence) { e.Bundle.Slot = 3 }, want: []policy.Code{"chain-untrusted"}},
	{name: "chain expired kind", mod: func(e *attest.Evidence) {
		e.Chains[0].Verified, e.Chains[0].ErrorKind = false, attest.ChainErrorExpired
	}, want: []policy.Code{"chain-expired"}},
	{name: "chain expired at now", mod: func(e *attest.Evidence) {
		e.Chains[0].Certificates[2].NotAfter = now.Add(-time.Minute)
	}, want: []policy.Code{"chain-expired"}},
	{name: "chain broken", mod: func(e *attest.Evidence) {
		e.Chains[0].Verified, e.Chains[0].ErrorKind = false, attest.ChainErrorBroken
	}, want: []policy.Code{"chain-broken"}},
	{name: "chain key usage", mod: func(e *attest.Evidence) {
		e.Chains[0].Verified, e.Chains[0].ErrorKind = false, attest.ChainErrorKeyUsage
	}, want: []policy.Code{"chain-broken"}},
	{name: "chain DER garbage", mod: func(e *attest.Evidence) { e.Chains[0].Chain[1] = []byte{0x30, 0x01} }, want: []policy.Code{"chain-broken"}},
	{name: "san absent but required", mod: func(e *attest.Evidence) { e.Chains[0].CMASAN = nil }, want: []policy.Code{"san-mismatch"}},
	{name: "san other device", mod: func(e *attest.Evidence) { e.Chains[0].CMASAN.DeviceID = 0x5679 }, want: []policy.Code{"san-mismatch"}},
	{name: "san dsn differs", mod: func(e *attest.Evidence) { e.Chains[0].CMASAN.DSN = u64(1) }, want: []policy.Code{"san-mismatch"}},
	{name: "san attest says mismatch", mod: func(e *attest.Evidence) { f := false; e.Chains[0].CMASAN.MatchesIdentity = &f }, want: []policy.Code{"san-mismatch"}},
	{name: "never signed", mod: func(e *attest.Evidence) {
		e.ChallengeVerified, e.MeasurementsSignatureVerified, e.Session = false, false, nil
	}, want: []policy.Code{"signature-invalid", "session-required"}},
	{name: "measurements unsigned", mod: func(e *attest.Evidence) { e.MeasurementsSignatureVerified = false }, want: []policy.Code{"signature-invalid"}},
	{name: "measurement mismatch", mod: func(e *attest.Evidence) { e.Measurements[0].Value = make([]byte, 48) }, want: []policy.Code{"measurement-mismatch"}},
	{name: "measurement duplicated", mod: func(e *attest.Evidence) {
		e.Measurements = append(e.Measurements, e.Measurements[0])
	}, want: []policy.Code{"measurement-mismatch"}},
	{name: "measurement wrong algorithm", mod: func(e *attest.Evidence) { e.Algorithms.MeasurementHash = "sha-256" }, want: []policy.Code{"algorithm-not-allowed", "measurement-mismatch"}},
	{name: "measurement missing", mod: func(e *attest.Evidence) { e.Measurements = e.Measurements[1:] }, want: []policy.Code{"measurement-missing"}},
	{name: "svn too low", mod: func(e *attest.Evidence) { e.Measurements[1].Value = []byte{6, 0, 0, 0, 0, 0, 0, 0} }, want: []policy.Code{"svn-too-low"}},
	{name: "svn missing", mod: func(e *attest.Evidence) { e.Measurements = slices.Delete(e.Measurements, 1, 2) }, want: []policy.Code{"measurement-missing"}},
	{name: "svn malformed", mod: func(e *attest.Evidence) { e.Measurements[1].Value = []byte{9} }, want: []policy.Code{"protocol"}},
	{name: "debug mode", mod: func(e *attest.Evidence) { e.Measurements[2].Value[12] = 0x08 }, want: []policy.Code{"debug-mode"}},
	{name: "device mode missing", mod: func(e *attest.Evidence) { e.Measurements = e.Measurements[:2] }, want: []policy.Code{"measurement-missing"}},
	{name: "version too low", mod: func(e *attest.Evidence) { e.Version = "1.1" }, want: []policy.Code{"version-too-low"}},
	{name: "version garbage", mod: func(e *attest.Evidence) { e.Version = "x" }, want: []policy.Code{"version-too-low"}},
	{name: "asym not allowed", mod: func(e *attest.Evidence) { e.Algorithms.BaseAsym = "rsassa-2048" }, want: []policy.Code{"algorithm-not-allowed"}},
	{name: "hash not allowed", mod: func(e *attest.Evidence) { e.Algorithms.BaseHash = "sha-256" }, want: []policy.Code{"algorithm-not-allowed"}},
	{name: "no session", mod: func(e *attest.Evidence) { e.Session = nil }, want: []policy.Code{"session-required"}},
	{name: "tdisp unlocked", mod: func(e *attest.Evidence) { e.TDISP.State = "CONFIG_UNLOCKED" }, want: []policy.Code{"tdisp-not-locked"}},
	{name: "tdisp absent", mod: func(e *attest.Evidence) { e.TDISP = nil }, want: []policy.Code{"tdisp-not-locked"}},
	{name: "tdisp locked, but not by vfio-gate", mod: func(e *attest.Evidence) { e.TDISP.LockedFor = "" }, want: []policy.Code{"tdisp-not-locked"}},
	{name: "tdisp running, not by vfio-gate", mod: func(e *attest.Evidence) { e.TDISP.State, e.TDISP.LockedFor = "RUN", "" },
		want: []policy.Code{"tdisp-not-locked"}},
	{name: "lockdown", mod: fail(attest.FailLockdown), want: []policy.Code{"lockdown"}},
	{name: "permission", mod: fail(attest.FailPermission), want: []policy.Code{"permission"}},
	{name: "mailbox busy", mod: fail(attest.FailMailboxBusy), want: []policy.Code{"mailbox-busy"}},
	{name: "mailbox owned", mod: fail(attest.FailMailboxOwned), want: []policy.Code{"mailbox-owned"}},
	{name: "mailbox tampered", mod: fail(attest.FailMailboxTampered), want: []policy.Code{"mailbox-tampered"}},
	{name: "timeout", mod: fail(attest.FailTimeout), want: []policy.Code{"timeout"}},
	{name: "device removed", mod: fail(attest.FailDeviceGone), want: []policy.Code{"device-removed"}},
	{name: "transport", mod: fail(attest.FailTransport), want: []policy.Code{"transport"}},
	{name: "protocol", mod: fail(attest.FailProtocol), want: []policy.Code{"protocol"}},
	{name: "signature failure", mod: fail(attest.FailSignature), want: []policy.Code{"signature-invalid"}},
	{name: "nonce failure", mod: fail(attest.FailNonce), want: []policy.Code{"signature-invalid"}},
	{name: "session failure", mod: fail(attest.FailSession), want: []policy.Code{"session-required"}},
	{name: "tdisp failure", mod: fail(attest.FailTDISP), want: []policy.Code{"tdisp-not-locked"}},
	{name: "unknown failure kind", mod: fail(attest.Kind(200)), want: []policy.Code{"protocol"}},
	{name: "zero failure kind", mod: fail(attest.FailUnknown), want: []policy.Code{"protocol"}},
	{name: "chain failure kind", mod: func(e *attest.Evidence) {
		fail(attest.FailChain)(e)
		e.Chains[0].Verified, e.Chains[0].ErrorKind = false, attest.ChainErrorExpired
	}, want: []policy.Code{"chain-expired"}},
	{name: "stopped early: only the failure", mod: func(e *attest.Evidence) {
		g := &attest.Evidence{Identity: e.Identity, HasCMA: true}
		g.Failure = &attest.Failure{Step: "version", Kind: attest.FailTimeout, Message: "no answer"}
		*e = *g
	}, want: []policy.Code{"timeout"}},
	{name: "discovery timed out: timeout, not no-cma", mod: func(e *attest.Evidence) {
		g := &attest.Evidence{Identity: e.Identity, DOE: []attest.Mailbox{{Offset: 0x100, Features: []string{}}}}
		g.Failure = &attest.Failure{Step: "doe-discovery", Kind: attest.FailTimeout, Message: "no answer"}
		*e = *g
	}, want: []policy.Code{"timeout"}},
	{name: "discovery found no CMA: no-cma", mod: func(e *attest.Evidence) {
		g := &attest.Evidence{Identity: e.Identity, DOE: []attest.Mailbox{{Offset: 0x100, Features: []string{"doe-discovery"}}}}
		g.Failure = &attest.Failure{Step: "doe-discovery", Kind: attest.FailNoCMA, Message: "no CMA"}
		*e = *g
	}, want: []policy.Code{"no-cma"}},
	{name: "never negotiated without failure", mod: func(e *attest.Evidence) {
		*e = attest.Evidence{Identity: e.Identity, HasCMA: true}
	}, want: []policy.Code{"protocol", "chain-untrusted", "signature-invalid", "session-required", "measurement-missing", "tdisp-not-locked"}},
	{name: "no rule, confidential", mod: func(e *attest.Evidence) { e.Identity.VendorID = 0x9999 }, conf: true, want: []policy.Code{"no-rule"}, noRule: true},
	{name: "no rule, no cma, confidential", mod: func(e *attest.Evidence) { e.Identity.VendorID = 0x9999; e.HasCMA = false }, conf: true, want: []policy.Code{"no-cma"}, noRule: true},
	{name: "no rule, non-confidential allows", mod: func(e *attest.Evidence) { e.Identity.VendorID = 0x9999; e.HasCMA = false }, want: []policy.Code{}, noRule: true},
	{name: "no rule, non-confidential, busy mailbox still allowed", mod: func(e *attest.Evidence) {
		e.Identity.VendorID = 0x9999
		fail(attest.FailMailboxBusy)(e)
	}, want: []policy.Code{}, noRule: true},
	{name: "no rule, non-confidential, untrusted chain expected", mod: func(e *attest.Evidence) {
		e.Identity.VendorID = 0x9999
		fail(attest.FailChain)(e)
		e.Chains[0].Verified, e.Chains[0].ErrorKind = false, attest.ChainErrorUntrusted
	}, want: []policy.Code{}, noRule: true},
	{name: "no rule, non-confidential, bad signature denies", mod: func(e *attest.Evidence) {
		e.Identity.VendorID = 0x9999
		fail(attest.FailSignature)(e)
	}, want: []policy.Code{"signature-invalid"}, noRule: true},
	{name: "rule without spdm, confidential", mod: func(e *attest.Evidence) {
		e.Identity = attest.Identity{VendorID: 0x8086, Class: 0x060400}
	}, conf: true, want: []policy.Code{"no-rule"}},
	{name: "rule without spdm, confidential, no cma", mod: func(e *attest.Evidence) {
		e.Identity = attest.Identity{VendorID: 0x8086, Class: 0x060400}
		e.HasCMA = false
	}, conf: true, want: []policy.Code{"no-cma"}},
	{name: "rule without spdm, non-confidential", mod: func(e *attest.Evidence) {
		e.Identity = attest.Identity{VendorID: 0x8086, Class: 0x060400}
		e.HasCMA = false
	}, want: []policy.Code{}},
	{name: "nil evidence", mod: nil, want: []policy.Code{"protocol"}, noRule: true},
}

type reasonCodeCase struct {
	name   string
	mod    func(*attest.Evidence)
	conf   bool
	want   []policy.Code
	noRule bool
}

// fail returns an evidence change that records a failure of that kind.
func fail(kind attest.Kind) func(*attest.Evidence) {
	return func(e *attest.Evidence) { e.Failure = &attest.Failure{Step: "x", Kind: kind, Message: "boom"} }
}

func TestEvaluateReasonCodes(t *testing.T) {
	p := newPKI(t)
	pol := p.full("enforce")
	// The one case that needs this test's PKI, then the shared table.
	cases := append([]reasonCodeCase{
		{name: "chain verified to another anchor", mod: func(e *attest.Evidence) { e.Chains[0].AnchorSHA256 = p.otherSHA }, want: []policy.Code{"chain-untrusted"}},
	}, reasonCodeCases...)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := p.goodEvidence()
			if c.mod != nil {
				c.mod(ev)
			} else {
				ev = nil
			}
			v := pol.Evaluate(ev, policy.Input{Confidential: c.conf, Now: now})
			if d := cmp.Diff(c.want, codes(v)); d != "" {
				t.Errorf("codes (-want +got):\n%s\nreasons: %+v", d, v.Reasons)
			}
			wantAllow := len(c.want) == 0
			if v.Allow != wantAllow || (v.Decision == "allow") != wantAllow {
				t.Errorf("allow %v decision %q, want allow %v", v.Allow, v.Decision, wantAllow)
			}
			if c.noRule && v.Rule != "" {
				t.Errorf("rule %q, want none", v.Rule)
			}
			for _, r := range v.Reasons {
				if r.Message == "" || !strings.HasSuffix(r.Message, ".") || strings.Contains(r.Message, "\n") {
					t.Errorf("reason %s: message %q is not one sentence", r.Code, r.Message)
				}
				if policy.Advice(r.Code) == "" {
					t.Errorf("reason %s has no advice", r.Code)
				}
			}
			if !wantAllow && !slices.ContainsFunc(v.Checks, func(c policy.Check) bool { return !c.Pass }) &&
				!slices.Contains(c.want, policy.Code("no-rule")) && ev != nil {
				t.Errorf("deny without a failing check: %+v", v.Checks)
			}
		})
	}
}

func TestEvaluateCRLs(t *testing.T) {
	p := newPKI(t)
	day := 24 * time.Hour
	cases := []struct {
		name string
		crls func() []string
		want []policy.Code
	}{
		{"current, nothing revoked", func() []string {
			return []string{p.crl("root.crl", p.root, now.Add(-day), now.Add(day), big.NewInt(9999))}
		}, []policy.Code{}},
		{"intermediate revoked by root CRL", func() []string {
			return []string{p.crl("root.crl", p.root, now.Add(-day), now.Add(day), p.inter.cert.SerialNumber)}
		}, []policy.Code{"revoked"}},
		{"leaf revoked by intermediate CRL", func() []string {
			return []string{p.crl("inter.crl", p.inter, now.Add(-day), now.Add(day), p.leaf.cert.SerialNumber)}
		}, []policy.Code{"revoked"}},
		{"root CRL expired", func() []string {
			return []string{p.crl("root.crl", p.root, now.Add(-2*day), now.Add(-day))}
		}, []policy.Code{"crl-expired"}},
		{"intermediate CRL not yet valid", func() []string {
			return []string{p.crl("inter.crl", p.inter, now.Add(day), now.Add(2*day))}
		}, []policy.Code{"crl-expired"}},
		{"intermediate-named CRL signed by an impostor", func() []string {
			impostor := certKey{cert: p.inter.cert, key: p.leaf.key}
			return []string{p.crl("fake.crl", impostor, now.Add(-day), now.Add(day), p.leaf.cert.SerialNumber)}
		}, []policy.Code{"crl-invalid"}},
		{"CRL of an unrelated issuer does not apply", func() []string {
			return []string{p.crl("other.crl", p.otherRoot, now.Add(-day), now.Add(day), p.leaf.cert.SerialNumber)}
		}, []policy.Code{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pol := p.full("enforce", c.crls()...)
			v := pol.Evaluate(p.goodEvidence(), policy.Input{Confidential: true, Now: now})
			if d := cmp.Diff(c.want, codes(v)); d != "" {
				t.Errorf("codes (-want +got):\n%s\n%+v", d, v.Reasons)
			}
		})
	}
	t.Run("no chain DER", func(t *testing.T) {
		pol := p.full("enforce", p.crl("root.crl", p.root, now.Add(-day), now.Add(day)))
		ev := p.goodEvidence()
		ev.Chains[0].Chain = nil
		if got := codes(pol.Evaluate(ev, policy.Input{Now: now})); !slices.Equal(got, []policy.Code{"chain-broken"}) {
			t.Errorf("codes %v, want chain-broken", got)
		}
	})
}

func TestAuditModeAllowsButReports(t *testing.T) {
	p := newPKI(t)
	pol := p.full("audit")
	ev := p.goodEvidence()
	ev.Measurements[0].Value = make([]byte, 48)
	v := pol.Evaluate(ev, policy.Input{Confidential: true, Now: now})
	if !v.Allow || v.Decision != "allow" || v.Mode != policy.ModeAudit || !v.WouldDeny {
		t.Fatalf("audit verdict %+v", v)
	}
	if got := codes(v); !slices.Equal(got, []policy.Code{"measurement-mismatch"}) {
		t.Fatalf("audit reasons %v", got)
	}
	good := pol.Evaluate(p.goodEvidence(), policy.Input{Confidential: true, Now: now})
	if !good.Allow || good.WouldDeny || len(good.Reasons) != 0 {
		t.Fatalf("audit verdict of a good device %+v", good)
	}
}

func TestReferenceAlternativesAndRaw(t *testing.T) {
	p := newPKI(t)
	pol := p.full("enforce")
	ev := p.goodEvidence()
	ev.Measurements[0].Value = fwDigest2[:] // the second alternative
	if v := pol.Evaluate(ev, policy.Input{Now: now}); !v.Allow {
		t.Fatalf("second alternative denied: %+v", v.Reasons)
	}
	// A raw bit stream is hashed with the reference's algorithm.
	raw := []byte("firmware image bytes")
	sum := sha256.Sum256(raw)
	pol2 := p.mustLoad(fmt.Sprintf(`version: 1
rules:
  - name: r
    match: {vendor: 0x1234}
    spdm: {trust_anchors: [%s]}
    measurements:
      reference: {3: "sha256:%x"}
`, p.rootPEM, sum))
	ev = p.goodEvidence()
	ev.Measurements = append(ev.Measurements, attest.MeasurementBlock{Index: 3, Type: 1, Raw: true, Value: raw, Spec: 1})
	if v := pol2.Evaluate(ev, policy.Input{Now: now}); !v.Allow {
		t.Fatalf("raw measurement denied: %+v", v.Reasons)
	}
	ev.Measurements[len(ev.Measurements)-1].Value = []byte("other image")
	if got := codes(pol2.Evaluate(ev, policy.Input{Now: now})); !slices.Equal(got, []policy.Code{"measurement-mismatch"}) {
		t.Fatalf("tampered raw measurement: %v", got)
	}
	// A non-DMTF block never matches.
	ev.Measurements[len(ev.Measurements)-1] = attest.MeasurementBlock{Index: 3, Raw: true, Value: raw, Spec: 0}
	if got := codes(pol2.Evaluate(ev, policy.Input{Now: now})); !slices.Equal(got, []policy.Code{"measurement-mismatch"}) {
		t.Fatalf("non-DMTF block: %v", got)
	}
}

func TestMatchFields(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad(`version: 1
rules:
  - {name: by-bdf, match: {bdf: "0000:3B:00.1"}}
  - {name: by-dsn-string, match: {dsn: "00-11-22-33-44-55-66-77"}}
  - {name: by-dsn-int, match: {dsn: 0x8877665544332211}}
  - {name: by-subsystem, match: {subsystem_vendor: 0xabcd, subsystem_device: 0x0002}}
  - {name: by-class-exact, match: {class: 0x010802}}
  - {name: by-class-mask, match: {class: {value: 0x030000, mask: 0xff0000}}}
  - {name: by-device-scalar, match: {vendor: 0x1234, device: 0x5678}}
  - {name: by-device-list, match: {vendor: 0x1234, device: [0x1, 0x2]}}
`)
	dsn1, dsn2 := uint64(0x0011223344556677), uint64(0x8877665544332211)
	cases := []struct {
		id   attest.Identity
		want string
	}{
		{attest.Identity{BDF: "0000:3b:00.1"}, "by-bdf"},
		{attest.Identity{BDF: "0000:3b:00.2"}, ""},
		{attest.Identity{DSN: &dsn1}, "by-dsn-string"},
		{attest.Identity{DSN: &dsn2}, "by-dsn-int"},
		{attest.Identity{SubsystemVendorID: 0xabcd, SubsystemID: 2}, "by-subsystem"},
		{attest.Identity{SubsystemVendorID: 0xabcd, SubsystemID: 3}, ""},
		{attest.Identity{Class: 0x010802}, "by-class-exact"},
		{attest.Identity{Class: 0x010801}, ""},
		{attest.Identity{Class: 0x030200}, "by-class-mask"},
		{attest.Identity{VendorID: 0x1234, DeviceID: 0x5678}, "by-device-scalar"},
		{attest.Identity{VendorID: 0x1234, DeviceID: 0x2}, "by-device-list"},
		{attest.Identity{VendorID: 0x1235, DeviceID: 0x2}, ""},
	}
	for _, c := range cases {
		got := ""
		if r := pol.Match(c.id); r != nil {
			got = r.Name
		}
		if got != c.want {
			t.Errorf("Match(%+v) = %q, want %q", c.id, got, c.want)
		}
	}
}

func TestEveryCodeHasAdviceAndIsDocumented(t *testing.T) {
	seen := map[policy.Code]bool{}
	for _, c := range policy.AllCodes() {
		if seen[c] {
			t.Errorf("duplicate code %s", c)
		}
		seen[c] = true
		r := policy.ReasonFor(c, "")
		if r.Code != c || !strings.HasSuffix(r.Message, ".") || r.Message[0] < 'A' || r.Message[0] > 'Z' {
			t.Errorf("ReasonFor(%s) = %+v", c, r)
		}
		if !strings.Contains(policy.Advice(c), ":") {
			t.Errorf("advice of %s does not say what to do: %q", c, policy.Advice(c))
		}
	}
	for _, must := range []policy.Code{"no-cma", "chain-untrusted", "chain-expired", "chain-broken", "revoked", "crl-expired",
		"san-mismatch", "signature-invalid", "measurement-mismatch", "measurement-missing", "svn-too-low", "debug-mode",
		"version-too-low", "algorithm-not-allowed", "session-required", "tdisp-not-locked", "iommu-group-unsafe",
		"lockdown", "mailbox-busy", "mailbox-owned", "timeout", "device-removed", "no-rule", "transport", "protocol",
		"mailbox-tampered", "no-device", "lock", "tpm"} {
		if !seen[must] {
			t.Errorf("code %s missing", must)
		}
	}
	r := policy.ReasonFor(policy.CodeIOMMUGroupUnsafe, "0000:3b:00.1 is not allowed")
	if !strings.HasPrefix(r.Message, "0000:3b:00.1 is not allowed; ") {
		t.Errorf("detail not first: %q", r.Message)
	}
}

func TestExemptAndAnchors(t *testing.T) {
	p := newPKI(t)
	pol := p.full("enforce")
	if !pol.Exempt(0x060400) || !pol.Exempt(0x060401) || pol.Exempt(0x060000) || pol.Exempt(0x020000) {
		t.Error("Exempt(class) wrong for exempt_classes [0x0604]")
	}
	as := pol.TrustAnchors(p.goodEvidence().Identity)
	if len(as) != 1 || !as[0].Equal(p.root.cert) {
		t.Errorf("TrustAnchors = %v", as)
	}
	if pol.TrustAnchors(attest.Identity{VendorID: 1}) != nil {
		t.Error("anchors for an unmatched device")
	}
	if pol.PCR != 14 || pol.Mode != policy.ModeEnforce || pol.DefaultNonConfidential != policy.AllowUnattested {
		t.Errorf("top-level fields: %+v", pol)
	}
	x := pol.Explain()
	if len(x.Rules) != 2 || len(x.Rules[0].Anchors) != 1 || x.Rules[0].Anchors[0].SHA256 != p.rootSHA || *x.PCR != 14 {
		t.Errorf("explain: %+v", x)
	}
}

func TestREADMEDocumentsEveryCode(t *testing.T) {
	b, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range policy.Codes() {
		row := "| `" + string(c) + "` | " + policy.Advice(c) + " |"
		if !strings.Contains(string(b), row) {
			t.Errorf("docs/policy.md lacks the row for %s:\n%s", c, row)
		}
	}
}

func TestSocketDeviceSAN(t *testing.T) {
	p := newPKI(t)
	pol := p.mustLoad(fmt.Sprintf(`version: 1
rules:
  - name: lab
    match: {vendor: 0x1234, device: [0x5678, 0x5679]}
    spdm: {trust_anchors: [%s], require_cma_san: true}
`, p.rootPEM))
	for _, c := range []struct {
		dev  uint16
		want []policy.Code
	}{{0x5678, []policy.Code{}}, {0x5679, []policy.Code{"san-mismatch"}}} {
		ev := p.goodEvidence()
		// Only vendor and device are known for a socket device; class, revision,
		// subsystem IDs and DSN in the SAN cannot be compared.
		ev.Identity = attest.Identity{Socket: "127.0.0.1:2323", VendorID: 0x1234, DeviceID: c.dev}
		ev.Chains[0].CMASAN.MatchesIdentity = nil
		ev.Chains[0].CMASAN.DSN = u64(5)
		v := pol.Evaluate(ev, policy.Input{Confidential: true, Now: now})
		if v.Rule != "lab" {
			t.Fatalf("rule %q", v.Rule)
		}
		if d := cmp.Diff(c.want, codes(v)); d != "" {
			t.Errorf("device 0x%04x (-want +got):\n%s", c.dev, d)
		}
	}
}

// TestREADMESchemaExampleLoads keeps the README's schema example valid: it is
// loaded with its file paths and elided digests replaced by real ones.
func TestREADMESchemaExampleLoads(t *testing.T) {
	b, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "### Schema (version 1)")
	if start < 0 {
		t.Fatal("docs/policy.md has no schema section")
	}
	s = s[start:]
	i := strings.Index(s, "```yaml\n")
	j := strings.Index(s[i+8:], "```")
	if i < 0 || j < 0 {
		t.Fatal("no yaml block in the schema section")
	}
	text := s[i+8 : i+8+j]
	p := newPKI(t)
	crl := p.crl("acme.crl", p.root, now.Add(-time.Hour), now.Add(time.Hour))
	text = strings.NewReplacer(
		"/etc/vfio-gate/anchors/acme-root.pem", p.rootPEM,
		"/etc/vfio-gate/crl/acme.crl", crl,
		"sha384:9f2c...", fmt.Sprintf("sha384:%x", fwDigest),
		"sha384:41aa...", fmt.Sprintf("sha384:%x", fwDigest2),
	).Replace(text)
	pol, err := p.load(text)
	if err != nil {
		t.Fatalf("README example: %v", err)
	}
	if len(pol.Rules) != 1 || pol.Rules[0].SPDM == nil || pol.Rules[0].Measurements == nil || pol.Rules[0].TDISP == nil {
		t.Fatalf("README example loaded as %+v", pol)
	}
	v := pol.Evaluate(p.goodEvidence(), policy.Input{Confidential: true, Now: now})
	if !v.Allow {
		t.Fatalf("README example denies the good device: %+v", v.Reasons)
	}
}
