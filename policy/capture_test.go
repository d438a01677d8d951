package policy_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
)

// Capture → MarshalDocument → Parse gives back the captured rule, and the
// parsed policy allows the device it was captured from.
func TestCaptureRoundTrip(t *testing.T) {
	p := newPKI(t)
	ev := p.goodEvidence()
	ev.Measurements = append(ev.Measurements, attest.MeasurementBlock{Index: 3, Type: 2, Raw: true, Value: []byte("config"), TypeName: "hardware-config", Spec: 1},
		attest.MeasurementBlock{Index: 4, Type: 1, Value: bytes.Repeat([]byte{1}, 48), Spec: 0}) // not DMTF: not pinned
	anchors := []*policy.Anchor{{File: p.rootPEM, Cert: p.root.cert, SHA256: p.rootSHA},
		{File: p.otherPEM, Cert: p.otherRoot.cert, SHA256: p.otherSHA}}
	r, err := policy.Capture(ev, policy.CaptureOptions{Name: "acme nic", Anchors: anchors, ForbidDebugMode: true})
	if err != nil {
		t.Fatal(err)
	}
	doc := policy.MarshalDocument([]string{"captured in a test"}, r)
	if !strings.HasPrefix(doc, "# captured in a test\n") || !strings.Contains(doc, p.rootSHA+" (verified this device's chain)") ||
		strings.Contains(doc, p.otherPEM) || !strings.Contains(doc, "# hardware-config (raw value, hashed)") {
		t.Fatalf("document:\n%s", doc)
	}
	pol, err := policy.Parse([]byte(doc), p.dir+"/captured.yaml", &policy.LoadOptions{SkipPermissionCheck: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("%v\n%s", err, doc)
	}
	if len(pol.Rules) != 1 {
		t.Fatalf("rules %d", len(pol.Rules))
	}
	got := pol.Rules[0]
	if got.Name != "acme-nic" {
		t.Errorf("name %q", got.Name)
	}
	if d := cmp.Diff(r.Match, got.Match); d != "" {
		t.Errorf("match (-captured +parsed):\n%s", d)
	}
	anchorSHAs := func(as []*policy.Anchor) []string {
		var out []string
		for _, a := range as {
			out = append(out, a.SHA256)
		}
		return out
	}
	if d := cmp.Diff(anchorSHAs(r.SPDM.Anchors), anchorSHAs(got.SPDM.Anchors)); d != "" || len(got.SPDM.Anchors) != 1 {
		t.Errorf("anchors (-captured +parsed):\n%s", d)
	}
	if got.SPDM.MinVersion != "1.2" || !cmp.Equal(got.SPDM.Asym, []string{"ecdsa-p384"}) || !cmp.Equal(got.SPDM.Hash, []string{"sha-384"}) ||
		!got.SPDM.RequireCMASAN || got.SPDM.RequireSession {
		t.Errorf("spdm %+v", got.SPDM)
	}
	if d := cmp.Diff(r.Measurements, got.Measurements); d != "" {
		t.Errorf("measurements (-captured +parsed):\n%s", d)
	}
	m := got.Measurements
	if len(m.Reference) != 2 || m.MinSVN == nil || *m.MinSVN != 9 || !m.ForbidDebugMode || !m.RequireSigned {
		t.Errorf("measurements %+v", m)
	}
	if v := pol.Evaluate(ev, policy.Input{Confidential: true, Now: now}); !v.Allow {
		t.Errorf("the captured policy denies its device: %+v", v.Reasons)
	}
	changed := p.goodEvidence()
	changed.Measurements[0].Value = bytes.Repeat([]byte{9}, 48)
	if v := pol.Evaluate(changed, policy.Input{Confidential: true, Now: now}); v.Allow {
		t.Error("the captured policy allows changed firmware")
	}
}

func TestCaptureRefuses(t *testing.T) {
	p := newPKI(t)
	anchors := []*policy.Anchor{{File: p.otherPEM, Cert: p.otherRoot.cert, SHA256: p.otherSHA}}
	if _, err := policy.Capture(p.goodEvidence(), policy.CaptureOptions{Anchors: anchors}); err == nil || !strings.Contains(err.Error(), "none of the --trust-anchor files") {
		t.Errorf("anchor that did not verify: %v", err)
	}
	failed := p.goodEvidence()
	failed.Failure = &attest.Failure{Step: "challenge", Kind: attest.FailSignature, Message: "bad"}
	if _, err := policy.Capture(failed, policy.CaptureOptions{}); err == nil || !strings.Contains(err.Error(), "nothing to capture") {
		t.Errorf("failed attestation: %v", err)
	}
	unverified := p.goodEvidence()
	unverified.Chains[0].Verified = false
	if _, err := policy.Capture(unverified, policy.CaptureOptions{}); err == nil || !strings.Contains(err.Error(), "no verified certificate chain") {
		t.Errorf("unverified chain: %v", err)
	}
}
