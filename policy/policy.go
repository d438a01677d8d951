package policy

import (
	"crypto/x509"
	"slices"
	"time"
)

// Mode says whether a deny blocks (enforce) or is only reported (audit).
type Mode string

// Modes.
const (
	ModeEnforce Mode = "enforce"
	ModeAudit   Mode = "audit"
)

// Default is what happens to a device no attesting rule covers.
type Default string

// Defaults.
const (
	DenyUnattested  Default = "deny-unattested"
	AllowUnattested Default = "allow-unattested"
)

// Policy is a loaded, validated policy file. It is immutable and safe for
// concurrent use.
type Policy struct {
	Path    string
	Version int
	Mode    Mode
	// PCR is tpm.pcr, or -1 when the file leaves it to the TPM package's default.
	PCR                    int
	DefaultConfidential    Default
	DefaultNonConfidential Default
	// ExemptClasses are 16-bit base-class/sub-class codes (0x0604 = PCI
	// bridge) of IOMMU group members that need not be bound with the group.
	ExemptClasses []uint16
	Rules         []*Rule
	// Libvirt is what the daemon does about libvirt domains (libvirt: in the file).
	Libvirt Libvirt
	// Warnings are non-fatal findings (expired anchors, resettable PCR, ...).
	Warnings []Warning
}

// Hotplug says what the daemon does with a PCI hostdev that appears on a
// running domain without a gate decision (hot-plug calls no libvirt hook).
type Hotplug string

// Hot-plug actions.
const (
	HotplugReport Hotplug = "report" // log at warn level and show in status
	HotplugDetach Hotplug = "detach" // report, then detach it from the domain
)

// Libvirt is the libvirt: section of the policy. Zero value: report hot-plug,
// record TDISP state exits in the TPM.
type Libvirt struct {
	Hotplug Hotplug
	// RecordTDISPExit records a TPM event when a running domain's TDI leaves
	// CONFIG_LOCKED/RUN (libvirt.record_tdisp_exit, default true).
	RecordTDISPExit bool
	// ConfidentialTypes are <launchSecurity type=...> values, beyond
	// BuiltinConfidentialTypes, that make a domain confidential
	// (libvirt.confidential_types). A type in neither list is refused.
	ConfidentialTypes []string
	// ConfidentialDomains names libvirt domains the daemon always treats as
	// confidential (libvirt.confidential_domains), whatever their XML says:
	// for a TEE the installed libvirt cannot express. It only ever adds
	// gating: a domain not listed is classified by its launchSecurity.
	ConfidentialDomains []string
}

// maxDomainName caps a name in libvirt.confidential_domains.
const maxDomainName = 256

// BuiltinConfidentialTypes are the launchSecurity types that always make a
// libvirt domain confidential.
var BuiltinConfidentialTypes = []string{"sev", "sev-snp", "tdx", "s390-pv"}

// Confidential classifies a domain's launchSecurity type: confidential is
// true for a built-in or listed type; known is false for a type in neither
// list (the caller refuses: vfio-gate cannot tell whether it is a TEE).
// "" (no launchSecurity) is known and not confidential.
func (l Libvirt) Confidential(launchSecurity string) (confidential, known bool) {
	switch {
	case launchSecurity == "":
		return false, true
	case slices.Contains(BuiltinConfidentialTypes, launchSecurity), slices.Contains(l.ConfidentialTypes, launchSecurity):
		return true, true
	}
	return false, false
}

// Warning is a non-fatal finding at a line of the policy file.
type Warning struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// Rule is one entry of rules:, in file order; the first matching rule wins.
type Rule struct {
	Name  string
	Line  int
	Match Match
	// SPDM is nil when the rule does not require attestation.
	SPDM         *SPDM
	Measurements *Measurements
	TDISP        *TDISPRule

	notes *captureNotes // comments of a captured rule (Capture), for MarshalDocument
}

// Match selects functions; every set field must equal. An empty match is
// refused at load (it would match everything by accident).
type Match struct {
	Vendor          *uint16
	Devices         []uint16 // any of
	SubsystemVendor *uint16
	SubsystemDevice *uint16
	Class           *ClassMatch
	BDF             string // canonical "dddd:bb:dd.f"
	DSN             *uint64
}

// ClassMatch matches (class & Mask) == Value on the 24-bit class code.
type ClassMatch struct{ Value, Mask uint32 }

// SPDM are the rule's attestation requirements.
type SPDM struct {
	MinVersion     string // "1.2"; "" = any
	Asym           []string
	Hash           []string
	Anchors        []*Anchor
	CRLs           []*CRL
	RequireSession bool
	RequireCMASAN  bool
}

// Anchor is a trust anchor certificate loaded from a file.
type Anchor struct {
	File   string // as resolved (absolute or relative to the working directory)
	Line   int
	Cert   *x509.Certificate
	SHA256 string // hex SHA-256 of the DER
}

// CRL is an offline certificate revocation list loaded from a file.
type CRL struct {
	File string
	Line int
	List *x509.RevocationList
	// SignedBy is the SHA-256 of the anchor that verified the CRL's signature
	// at load, or "" when the issuer is an intermediate that is checked
	// against the device's chain at evaluation.
	SignedBy string
}

// Measurements are the rule's firmware measurement requirements.
type Measurements struct {
	RequireSigned bool
	// Reference maps a measurement index to its acceptable values.
	Reference       map[uint8][]Digest
	MinSVN          *uint64
	ForbidDebugMode bool
}

// Digest is one reference value "alg:hex".
type Digest struct {
	Alg   string // "sha256", "sha384", "sha512", "sha3-256", "sha3-384", "sha3-512"
	Value []byte
}

// TDISPRule are TDISP requirements.
type TDISPRule struct{ RequireLock bool }

// LoadOptions adjust Load. The zero value (or nil) is production behaviour.
type LoadOptions struct {
	// Now is the clock for load-time warnings (expired anchors and CRLs); nil = time.Now.
	Now func() time.Time
	// SkipPermissionCheck disables the ownership and mode checks on the policy,
	// anchor and CRL files. Only for tests and the demo: a CLI must never set
	// it without saying so on stderr.
	SkipPermissionCheck bool
}

func (o *LoadOptions) now() time.Time {
	if o == nil || o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

// Anchors returns the certificates of the rule's trust anchors (nil when the
// rule has no spdm section), for attest to verify chains against.
func (r *Rule) Anchors() []*x509.Certificate {
	if r == nil || r.SPDM == nil {
		return nil
	}
	out := make([]*x509.Certificate, 0, len(r.SPDM.Anchors))
	for _, a := range r.SPDM.Anchors {
		out = append(out, a.Cert)
	}
	return out
}

// Exempt reports whether a group member of the given 24-bit class code is
// exempt from the IOMMU group rule (bridges and ports the policy lists).
func (p *Policy) Exempt(class uint32) bool {
	for _, c := range p.ExemptClasses {
		if uint32(c) == class>>8&0xffff {
			return true
		}
	}
	return false
}
