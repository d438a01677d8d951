package report

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vfio-gate/vfio-gate/policy"
)

func TestPolicyErrors(t *testing.T) {
	err := errors.Join(&policy.Error{File: "p.yaml", Line: 12, Column: 3, Msg: `unknown key "x"`},
		fmt.Errorf("wrapped: %w", &policy.Error{File: "p.yaml", Msg: "no rules"}), errors.New("plain"))
	got := PolicyErrors(err)
	want := []PolicyError{{File: "p.yaml", Line: 12, Column: 3, Message: `unknown key "x"`}, {File: "p.yaml", Message: "no rules"}, {Message: "plain"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	for i, s := range []string{`p.yaml:12: unknown key "x"`, "p.yaml: no rules", ": plain"} {
		if got[i].String() != s {
			t.Errorf("%d: %q, want %q", i, got[i].String(), s)
		}
	}
}

func TestWritePolicy(t *testing.T) {
	pcr := 15
	day := time.Date(2030, 1, 2, 3, 4, 0, 0, time.UTC)
	x := policy.Explanation{File: "/etc/p.yaml", Version: 1, Mode: policy.ModeEnforce, PCR: &pcr,
		DefaultConfidential: policy.DenyUnattested, DefaultNonConfidential: policy.AllowUnattested,
		Rules: []policy.RuleExplanation{{Name: "nic", Line: 6, Match: "vendor 0x1234", Checks: []string{"SPDM version >= 1.2"},
			Anchors: []policy.AnchorExplanation{{File: "a.pem", Subject: "CN=A", SHA256: "ff", NotAfter: day}},
			CRLs:    []policy.CRLExplanation{{File: "c.crl", Issuer: "CN=A", NextUpdate: day, Revoked: 2}}}},
		Warnings: []policy.Warning{{Line: 9, Message: "careful"}}}
	var b strings.Builder
	if err := WritePolicy(&b, x); err != nil {
		t.Fatal(err)
	}
	want := `/etc/p.yaml: valid (version 1, mode enforce)
  tpm pcr:                  15
  confidential default:     deny-unattested
  non-confidential default: allow-unattested
  iommu group exempt:       none

rule nic (line 6): matches vendor 0x1234
  - SPDM version >= 1.2
  trust anchors:
    a.pem  CN=A  sha256:ff  until 2030-01-02
  crls:
    c.crl  CN=A  next update 2030-01-02 03:04  2 revoked

warnings:
  /etc/p.yaml:9: careful
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := WritePolicy(&b, policy.Explanation{File: "e.yaml", ExemptClasses: []string{"0x0604", "0x0600"}}); err != nil ||
		!strings.Contains(b.String(), "tpm pcr:                  TPM default\n") || !strings.Contains(b.String(), "exempt:       0x0604, 0x0600\n") ||
		!strings.Contains(b.String(), "  no rules: every device follows the defaults\n") {
		t.Errorf("empty policy: %v\n%s", err, b.String())
	}
}
