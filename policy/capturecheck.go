package policy

import (
	"crypto/x509"
	"strings"
)

// AnchorCerts are the certificates of anchors, in order: the roots an
// attestation verifies the device's chain against before a capture.
func AnchorCerts(anchors []*Anchor) []*x509.Certificate {
	var out []*x509.Certificate
	for _, a := range anchors {
		out = append(out, a.Cert)
	}
	return out
}

// ReasonsText is v's reasons on one line, each as "code: message", joined
// by "; " ("" when there is none).
func (v Verdict) ReasonsText() string {
	rs := make([]string, 0, len(v.Reasons))
	for _, r := range v.Reasons {
		rs = append(rs, string(r.Code)+": "+r.Message)
	}
	return strings.Join(rs, "; ")
}
