package policy_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vfio-gate/vfio-gate/policy"
)

// CheckCapture: the captured document loads and allows its device; a
// device with other firmware is denied; a document that does not load is
// an error.
func TestCheckCapture(t *testing.T) {
	p := newPKI(t)
	ev := p.goodEvidence()
	r, err := policy.Capture(ev, policy.CaptureOptions{Anchors: []*policy.Anchor{{File: p.rootPEM, Cert: p.root.cert, SHA256: p.rootSHA}}})
	if err != nil {
		t.Fatal(err)
	}
	doc := policy.MarshalDocument(nil, r)
	if v, err := policy.CheckCapture(doc, ev); err != nil || !v.Allow {
		t.Fatalf("captured device: %+v, %v", v, err)
	}
	changed := p.goodEvidence()
	changed.Measurements[0].Value = bytes.Repeat([]byte{9}, 48)
	if v, err := policy.CheckCapture(doc, changed); err != nil || v.Allow {
		t.Fatalf("changed firmware: %+v, %v", v, err)
	}
	if _, err := policy.CheckCapture("version: 1\nbogus: 1\n", ev); err == nil || !strings.Contains(err.Error(), "captured policy does not load") {
		t.Fatalf("bad document: %v", err)
	}
}
