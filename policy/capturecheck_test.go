package policy_test

import (
	"crypto/x509"
	"testing"

	"github.com/vfio-gate/vfio-gate/policy"
)

func TestAnchorCerts(t *testing.T) {
	a, b := &x509.Certificate{Raw: []byte{1}}, &x509.Certificate{Raw: []byte{2}}
	got := policy.AnchorCerts([]*policy.Anchor{{Cert: a}, {Cert: b}})
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("%v", got)
	}
	if got := policy.AnchorCerts(nil); len(got) != 0 {
		t.Fatalf("no anchors: %v", got)
	}
}

func TestReasonsText(t *testing.T) {
	v := policy.Verdict{Reasons: []policy.Reason{{Code: "measurement", Message: "index 1 differs"}, {Code: "debug-mode", Message: "on"}}}
	if got, want := v.ReasonsText(), "measurement: index 1 differs; debug-mode: on"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := (policy.Verdict{}).ReasonsText(); got != "" {
		t.Fatalf("no reasons: %q", got)
	}
}
