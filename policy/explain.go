package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Explanation is a description of a loaded policy for `vfio-gate policy check`.
type Explanation struct {
	File                   string            `json:"file"`
	Version                int               `json:"version"`
	Mode                   Mode              `json:"mode"`
	PCR                    *int              `json:"tpm_pcr"` // null: the TPM default
	DefaultConfidential    Default           `json:"default_confidential"`
	DefaultNonConfidential Default           `json:"default_non_confidential"`
	ExemptClasses          []string          `json:"iommu_group_exempt_classes"`
	Rules                  []RuleExplanation `json:"rules"`
	Warnings               []Warning         `json:"warnings"`
}

// RuleExplanation describes one rule.
type RuleExplanation struct {
	Name    string              `json:"name"`
	Line    int                 `json:"line"`
	Match   string              `json:"match"`
	Checks  []string            `json:"checks"`
	Anchors []AnchorExplanation `json:"trust_anchors"`
	CRLs    []CRLExplanation    `json:"crls"`
}

// AnchorExplanation describes one trust anchor.
type AnchorExplanation struct {
	File     string    `json:"file"`
	Subject  string    `json:"subject"`
	SHA256   string    `json:"sha256"`
	NotAfter time.Time `json:"not_after"`
}

// CRLExplanation describes one CRL.
type CRLExplanation struct {
	File       string    `json:"file"`
	Issuer     string    `json:"issuer"`
	ThisUpdate time.Time `json:"this_update"`
	NextUpdate time.Time `json:"next_update"`
	Revoked    int       `json:"revoked"`
	SignedBy   string    `json:"signed_by_anchor,omitempty"`
}

// Explain describes p: what each rule matches and checks, with anchor fingerprints.
func (p *Policy) Explain() Explanation {
	x := Explanation{File: p.Path, Version: p.Version, Mode: p.Mode, DefaultConfidential: p.DefaultConfidential,
		DefaultNonConfidential: p.DefaultNonConfidential, ExemptClasses: []string{}, Rules: []RuleExplanation{},
		Warnings: p.Warnings}
	if x.Warnings == nil {
		x.Warnings = []Warning{}
	}
	if p.PCR >= 0 {
		pcr := p.PCR
		x.PCR = &pcr
	}
	for _, c := range p.ExemptClasses {
		x.ExemptClasses = append(x.ExemptClasses, fmt.Sprintf("0x%04x", c))
	}
	for _, r := range p.Rules {
		x.Rules = append(x.Rules, r.explain())
	}
	return x
}

func (m *Match) String() string {
	var parts []string
	if m.Vendor != nil {
		parts = append(parts, fmt.Sprintf("vendor 0x%04x", *m.Vendor))
	}
	if len(m.Devices) > 0 {
		ds := make([]string, len(m.Devices))
		for i, d := range m.Devices {
			ds[i] = fmt.Sprintf("0x%04x", d)
		}
		parts = append(parts, "device "+strings.Join(ds, "|"))
	}
	if m.SubsystemVendor != nil {
		parts = append(parts, fmt.Sprintf("subsystem_vendor 0x%04x", *m.SubsystemVendor))
	}
	if m.SubsystemDevice != nil {
		parts = append(parts, fmt.Sprintf("subsystem_device 0x%04x", *m.SubsystemDevice))
	}
	if m.Class != nil {
		parts = append(parts, fmt.Sprintf("class 0x%06x/0x%06x", m.Class.Value, m.Class.Mask))
	}
	if m.BDF != "" {
		parts = append(parts, "bdf "+m.BDF)
	}
	if m.DSN != nil {
		parts = append(parts, fmt.Sprintf("dsn 0x%016x", *m.DSN))
	}
	return strings.Join(parts, ", ")
}

func (r *Rule) explain() RuleExplanation {
	x := RuleExplanation{Name: r.Name, Line: r.Line, Match: r.Match.String(), Checks: []string{},
		Anchors: []AnchorExplanation{}, CRLs: []CRLExplanation{}}
	add := func(f string, a ...any) { x.Checks = append(x.Checks, fmt.Sprintf(f, a...)) }
	if r.SPDM == nil {
		add("no attestation: allowed unattested for non-confidential VMs; confidential VMs follow defaults.confidential")
		return x
	}
	s := r.SPDM
	add("CMA-SPDM mailbox present, SPDM negotiated, chain of the signing slot verified to one of %d trust anchor(s), no certificate expired", len(s.Anchors))
	add("device signed a fresh nonce (CHALLENGE, signed MEASUREMENTS or KEY_EXCHANGE)")
	if s.MinVersion != "" {
		add("SPDM version >= %s", s.MinVersion)
	}
	if len(s.Asym) > 0 {
		add("signature algorithm one of %s", strings.Join(s.Asym, ", "))
	}
	if len(s.Hash) > 0 {
		add("hash algorithm one of %s", strings.Join(s.Hash, ", "))
	}
	if len(s.CRLs) > 0 {
		add("no chain certificate revoked by %d CRL(s); every CRL current", len(s.CRLs))
	}
	if s.RequireCMASAN {
		add("leaf carries a CMA SAN naming this device")
	} else {
		add("a CMA SAN, if present, names this device")
	}
	if s.RequireSession {
		add("SPDM secure session established")
	}
	if m := r.Measurements; m != nil {
		if m.RequireSigned {
			add("measurements signed")
		}
		idx := make([]int, 0, len(m.Reference))
		for i := range m.Reference {
			idx = append(idx, int(i))
		}
		slices.Sort(idx)
		for _, i := range idx {
			add("measurement %d equals one of %d reference value(s)", i, len(m.Reference[uint8(i)]))
		}
		if m.MinSVN != nil {
			add("firmware SVN >= %d", *m.MinSVN)
		}
		if m.ForbidDebugMode {
			add("no debug mode active or ever active")
		}
	}
	if r.TDISP != nil && r.TDISP.RequireLock {
		add("TDISP interface CONFIG_LOCKED or RUN (the daemon locks it at a confidential domain's check)")
	}
	for _, a := range s.Anchors {
		x.Anchors = append(x.Anchors, AnchorExplanation{File: a.File, Subject: a.Cert.Subject.String(), SHA256: a.SHA256, NotAfter: a.Cert.NotAfter})
	}
	for _, c := range s.CRLs {
		x.CRLs = append(x.CRLs, CRLExplanation{File: c.File, Issuer: c.List.Issuer.String(), ThisUpdate: c.List.ThisUpdate,
			NextUpdate: c.List.NextUpdate, Revoked: len(c.List.RevokedCertificateEntries), SignedBy: c.SignedBy})
	}
	return x
}
