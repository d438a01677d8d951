package policy

import (
	"bytes"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vfio-gate/vfio-gate/attest"
)

// Input is the context of one evaluation.
type Input struct {
	// Confidential: the device is destined for a confidential VM, so
	// defaults.confidential applies to devices no attesting rule covers.
	Confidential bool
	// Now is the evaluation time for certificate and CRL validity; zero = time.Now().
	Now time.Time
}

// Decisions.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// Verdict is the outcome of Evaluate.
//
// In enforce mode Decision is "deny" and Allow false whenever Reasons is
// non-empty. In audit mode Decision is always "allow" and Allow true; Reasons
// then lists what enforce mode would have denied, and WouldDeny says so.
type Verdict struct {
	Decision  string   `json:"decision"`
	Allow     bool     `json:"allow"`
	Mode      Mode     `json:"mode"`
	WouldDeny bool     `json:"would_deny"`
	Rule      string   `json:"rule,omitempty"`
	Reasons   []Reason `json:"reasons"`
	Checks    []Check  `json:"checks"`
}

// Reason is one cause of a deny: a stable code and a sentence that says what to do.
type Reason struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
}

// Check is one row of `vfio-gate explain`.
type Check struct {
	Name     string `json:"name"`
	Expected string `json:"expected"`
	Got      string `json:"got"`
	Pass     bool   `json:"pass"`
}

// Match returns the first rule (in file order) whose match covers id, or nil.
func (p *Policy) Match(id attest.Identity) *Rule {
	for _, r := range p.Rules {
		if r.Match.covers(id) {
			return r
		}
	}
	return nil
}

func (m *Match) covers(id attest.Identity) bool {
	if m.empty() {
		return false
	}
	if m.Vendor != nil && *m.Vendor != id.VendorID {
		return false
	}
	if len(m.Devices) > 0 && !slices.Contains(m.Devices, id.DeviceID) {
		return false
	}
	if m.SubsystemVendor != nil && *m.SubsystemVendor != id.SubsystemVendorID {
		return false
	}
	if m.SubsystemDevice != nil && *m.SubsystemDevice != id.SubsystemID {
		return false
	}
	if m.Class != nil && id.Class&m.Class.Mask != m.Class.Value {
		return false
	}
	if m.BDF != "" && strings.ToLower(id.BDF) != m.BDF {
		return false
	}
	if m.DSN != nil && (id.DSN == nil || *id.DSN != *m.DSN) {
		return false
	}
	return true
}

// TrustAnchors returns the anchors of the rule matching id (nil if none), for attest.
func (p *Policy) TrustAnchors(id attest.Identity) []*x509.Certificate {
	return p.Match(id).Anchors()
}

type eval struct {
	p   *Policy
	ev  *attest.Evidence
	now time.Time
	v   Verdict
	// stopped: attestation ended early (Failure set), so absent facts are
	// "not reached" rather than separate reasons.
	stopped bool
}

func (e *eval) check(name, expected, got string, pass bool) {
	e.v.Checks = append(e.v.Checks, Check{Name: name, Expected: expected, Got: got, Pass: pass})
}

func (e *eval) deny(c Code, detail string, a ...any) {
	// One reason per code (the first cause found); Checks keep every detail.
	for _, have := range e.v.Reasons {
		if have.Code == c {
			return
		}
	}
	e.v.Reasons = append(e.v.Reasons, ReasonFor(c, fmt.Sprintf(detail, a...)))
}

// Evaluate decides on ev. It never fails: missing or contradictory evidence
// is a deny with a reason. It does no I/O.
func (p *Policy) Evaluate(ev *attest.Evidence, in Input) Verdict {
	e := &eval{p: p, ev: ev, now: in.Now, v: Verdict{Mode: p.Mode, Reasons: []Reason{}, Checks: []Check{}}}
	if e.now.IsZero() {
		e.now = time.Now()
	}
	if ev == nil {
		e.deny(CodeProtocol, "no evidence was gathered")
		return e.finish()
	}
	e.stopped = ev.Failure != nil
	rule := p.Match(ev.Identity)
	def := p.DefaultNonConfidential
	ctx := "non-confidential"
	if in.Confidential {
		def, ctx = p.DefaultConfidential, "confidential"
	}
	ruleName := "none"
	if rule != nil {
		ruleName = rule.Name
		e.v.Rule = rule.Name
	}
	e.check("rule", "a rule matching the device", ruleName, rule != nil || def == AllowUnattested)
	switch {
	case rule != nil && rule.SPDM != nil:
		e.attested(rule)
	case rule != nil && !in.Confidential:
		// A rule without spdm is the operator's explicit "allow unattested" for
		// non-confidential use.
		e.check("attestation", "not required by rule "+rule.Name, "skipped", true)
		e.unattested(AllowUnattested, "rule "+rule.Name)
	default:
		e.check("defaults."+strings.ReplaceAll(ctx, "-", "_"), "", string(def), def == AllowUnattested)
		e.unattested(def, ctx)
		if def == DenyUnattested && len(e.v.Reasons) == 0 {
			// deny-unattested always denies here: no rule can attest this device.
			switch {
			case ev.Failure != nil && hostSide(ev.Failure.Kind) && ev.Failure.Kind != attest.FailNoDOE && ev.Failure.Kind != attest.FailNoCMA:
				// The host could not look (lockdown, permission, a driver or
				// another process owns the mailbox): whether the device has CMA
				// is unknown, so say what stopped us, not "no CMA".
				e.denyFailure(ev.Failure)
			case !ev.HasCMA:
				e.deny(CodeNoCMA, "the policy's defaults.%s is deny-unattested and the device has no CMA-SPDM mailbox", strings.ReplaceAll(ctx, "-", "_"))
			case rule != nil:
				e.deny(CodeNoRule, "rule %q has no spdm section, and the policy's defaults.%s is deny-unattested", rule.Name, strings.ReplaceAll(ctx, "-", "_"))
			default:
				e.deny(CodeNoRule, "no rule matches vendor 0x%04x device 0x%04x, and the policy's defaults.%s is deny-unattested",
					ev.Identity.VendorID, ev.Identity.DeviceID, strings.ReplaceAll(ctx, "-", "_"))
			}
		}
	}
	return e.finish()
}

func (e *eval) unattested(def Default, why string) {
	f := e.ev.Failure
	if f == nil || hostSide(f.Kind) {
		return
	}
	if f.Kind == attest.FailChain {
		// Without a rule there are no anchors: an untrusted root is expected.
		if c := e.chain(); c != nil && c.ErrorKind == attest.ChainErrorUntrusted {
			return
		}
	}
	if def == AllowUnattested {
		e.check("attestation-failure", "none (or the device cannot be attested)", f.Kind.String()+": "+f.Message, false)
	}
	e.denyFailure(f)
}

// chain returns the chain of the slot whose key signed, or nil.
func (e *eval) chain() *attest.ChainState {
	for i := range e.ev.Chains {
		if e.ev.Chains[i].Slot == e.ev.Bundle.Slot {
			return &e.ev.Chains[i]
		}
	}
	return nil
}

func (e *eval) denyFailure(f *attest.Failure) {
	detail := fmt.Sprintf("attestation stopped at %s: %s", f.Step, f.Message)
	switch c := KindCode(f.Kind); {
	case f.Kind == attest.FailChain:
		kind := ""
		if c := e.chain(); c != nil {
			kind = c.ErrorKind
		}
		e.deny(chainCode(kind), "%s", detail)
	case rowOfKind(f.Kind) == nil:
		e.deny(CodeProtocol, "attestation failed with unknown kind %q at %s: %s", f.Kind, f.Step, f.Message)
	default:
		e.deny(c, "%s", detail)
	}
}

func chainCode(kind string) Code {
	switch kind {
	case attest.ChainErrorUntrusted:
		return CodeChainUntrusted
	case attest.ChainErrorExpired:
		return CodeChainExpired
	}
	// broken-chain, key-usage, malformed and anything unknown.
	return CodeChainBroken
}

func (e *eval) finish() Verdict {
	v := e.v
	if len(v.Reasons) == 0 {
		v.Decision, v.Allow = DecisionAllow, true
		return v
	}
	if v.Mode == ModeAudit {
		v.Decision, v.Allow, v.WouldDeny = DecisionAllow, true, true
		return v
	}
	v.Decision, v.Allow = DecisionDeny, false
	return v
}

func (e *eval) attested(r *Rule) {
	ev, s := e.ev, r.SPDM
	if ev.Failure != nil {
		e.check("attestation", "completed", ev.Failure.Kind.String()+" at "+ev.Failure.Step+": "+ev.Failure.Message, false)
		e.denyFailure(ev.Failure)
	}
	if !ev.HasCMA && ev.Failure != nil && ev.Failure.Kind != attest.FailNoDOE && ev.Failure.Kind != attest.FailNoCMA {
		// Attestation stopped before it could tell (a discovery timeout,
		// lockdown, an owner of the mailbox): whether the device has CMA is
		// unknown, so the failure is the only reason, never no-cma.
		e.check("cma", "CMA-SPDM mailbox", "not reached", false)
		return
	}
	e.check("cma", "CMA-SPDM mailbox", yesNo(ev.HasCMA), ev.HasCMA)
	if !ev.HasCMA {
		e.deny(CodeNoCMA, "rule %q requires SPDM and the device has no CMA-SPDM mailbox", r.Name)
		return
	}
	reached := ev.Version != ""
	if !reached && !e.stopped {
		e.deny(CodeProtocol, "SPDM was never negotiated")
	}
	if s.MinVersion != "" {
		switch {
		case !reached:
			e.check("spdm.min_version", ">= "+s.MinVersion, "not reached", false)
		case !versionAtLeast(ev.Version, s.MinVersion):
			e.check("spdm.min_version", ">= "+s.MinVersion, ev.Version, false)
			e.deny(CodeVersionTooLow, "the device negotiated SPDM %s, the rule needs at least %s", ev.Version, s.MinVersion)
		default:
			e.check("spdm.min_version", ">= "+s.MinVersion, ev.Version, true)
		}
	}
	e.allowList(reached, "spdm.algorithms.asym", s.Asym, ev.Algorithms.BaseAsym)
	e.allowList(reached, "spdm.algorithms.hash", s.Hash, ev.Algorithms.BaseHash)
	if slices.Contains(hashNames, ev.Algorithms.MeasurementHash) {
		e.allowList(reached, "spdm.algorithms.hash (measurements)", s.Hash, ev.Algorithms.MeasurementHash)
	}
	certs := e.checkChain(r)
	e.checkCRLs(r, certs)
	e.checkSAN(r)
	auth := ev.ChallengeVerified || ev.MeasurementsSignatureVerified || (ev.Session != nil && ev.Session.Established)
	e.check("authentication", "a verified signature over our nonce (CHALLENGE, MEASUREMENTS or KEY_EXCHANGE)", yesNo(auth), auth)
	if !auth && !e.stopped {
		e.deny(CodeSignatureInvalid, "the device never signed a fresh nonce with its certificate key")
	}
	if s.RequireSession {
		ok := ev.Session != nil && ev.Session.Established
		got := yesNo(ok)
		if ev.Session == nil && e.stopped {
			got = "not reached"
		}
		e.check("spdm.require_session", "established", got, ok)
		if !ok && got != "not reached" {
			e.deny(CodeSessionRequired, "no SPDM secure session was established")
		}
	}
	if m := r.Measurements; m != nil {
		e.checkMeasurements(m)
	}
	if t := r.TDISP; t != nil && t.RequireLock {
		// A TDI is bound to the SPDM session that locked it, and the session
		// the evidence was gathered in was opened after a VCA, which ends
		// every earlier session: only a lock vfio-gate made in that very
		// session (LockedFor) is one it can rely on. A TDI that merely
		// reports itself locked or running there is not.
		state, got := "no TDISP", ""
		if ev.TDISP != nil {
			state = ev.TDISP.State
		} else if e.stopped {
			state = "not reached"
		}
		locked := state == "CONFIG_LOCKED" || state == "RUN"
		ok := locked && ev.TDISP.LockedFor != ""
		got = state
		if ok {
			got += " (locked for " + ev.TDISP.LockedFor + " in the attested session)"
		} else if locked {
			got += " (reported by the device; not locked by vfio-gate in the attested session)"
		}
		e.check("tdisp.require_lock", "CONFIG_LOCKED or RUN, locked by vfio-gate in the attested session", got, ok)
		switch {
		case ok || state == "not reached":
		case locked:
			e.deny(CodeTDISPNotLocked, "the TDI reports %s in a session vfio-gate just opened, but no lock of it can outlive that "+
				"session's VCA and vfio-gate did not lock it there: not a lock to rely on", state)
		default:
			e.deny(CodeTDISPNotLocked, "the TDISP interface state is %s", state)
		}
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (e *eval) allowList(reached bool, name string, allowed []string, got string) {
	if len(allowed) == 0 {
		return
	}
	exp := "one of " + strings.Join(allowed, ", ")
	switch {
	case !reached:
		e.check(name, exp, "not reached", false)
	case !slices.Contains(allowed, got):
		if got == "" {
			got = "(none)"
		}
		e.check(name, exp, got, false)
		e.deny(CodeAlgorithmNotAllowed, "the device negotiated %s, which %s does not allow", got, name)
	default:
		e.check(name, exp, got, true)
	}
}

func versionAtLeast(got, floor string) bool {
	gM, gm, ok1 := splitVersion(got)
	fM, fm, ok2 := splitVersion(floor)
	if !ok1 || !ok2 {
		return false
	}
	return gM > fM || gM == fM && gm >= fm
}

func splitVersion(s string) (int, int, bool) {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return 0, 0, false
	}
	M, err1 := strconv.Atoi(a)
	m, err2 := strconv.Atoi(b)
	return M, m, err1 == nil && err2 == nil && M >= 0 && m >= 0
}

// checkChain checks the signing slot's chain and returns its parsed
// certificates (root side first), or nil.
func (e *eval) checkChain(r *Rule) []*x509.Certificate {
	c := e.chain()
	if c == nil {
		got := "no chain for the signing slot"
		e.check("chain", "verified to a trust anchor of the rule", got, false)
		if !e.stopped {
			e.deny(CodeChainUntrusted, "the device presented no certificate chain for slot %d", e.ev.Bundle.Slot)
		}
		return nil
	}
	if !c.Verified {
		e.check("chain", "verified to a trust anchor of the rule", "not verified: "+c.Error, false)
		e.deny(chainCode(c.ErrorKind), "the certificate chain in slot %d did not verify: %s", c.Slot, c.Error)
		return nil
	}
	var anchor *Anchor
	for _, a := range r.SPDM.Anchors {
		if strings.EqualFold(a.SHA256, c.AnchorSHA256) {
			anchor = a
		}
	}
	if anchor == nil {
		e.check("chain", "verified to a trust anchor of the rule", "verified to anchor sha256:"+c.AnchorSHA256+", not one of this rule's", false)
		e.deny(CodeChainUntrusted, "the chain verified against an anchor (sha256 %s) that rule %q does not list", c.AnchorSHA256, r.Name)
		return nil
	}
	e.check("chain", "verified to a trust anchor of the rule", "verified to "+filepath.Base(anchor.File)+" ("+anchor.Cert.Subject.String()+")", true)
	var certs []*x509.Certificate
	for i, der := range c.Chain {
		x, err := x509.ParseCertificate(der)
		if err != nil {
			e.check("chain.parse", "DER certificates", fmt.Sprintf("certificate %d: %v", i, err), false)
			e.deny(CodeChainBroken, "certificate %d of the chain does not parse: %v", i, err)
			return nil
		}
		certs = append(certs, x)
	}
	expired := ""
	for _, ci := range c.Certificates {
		if !ci.NotAfter.IsZero() && e.now.After(ci.NotAfter) {
			expired = fmt.Sprintf("%s expired %s", ci.Subject, ci.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	for _, x := range certs {
		if e.now.After(x.NotAfter) {
			expired = fmt.Sprintf("%s expired %s", x.Subject, x.NotAfter.UTC().Format(time.RFC3339))
		} else if e.now.Before(x.NotBefore) {
			expired = fmt.Sprintf("%s is not valid before %s", x.Subject, x.NotBefore.UTC().Format(time.RFC3339))
		}
	}
	if expired != "" {
		e.check("chain.validity", "every certificate valid at "+e.now.UTC().Format(time.RFC3339), expired, false)
		e.deny(CodeChainExpired, "%s", expired)
	} else {
		e.check("chain.validity", "every certificate valid at "+e.now.UTC().Format(time.RFC3339), "valid", true)
	}
	return certs
}

// checkCRLs applies each CRL of the rule: freshness always; signature and
// serials for the chain's certificates it covers (same issuer name).
func (e *eval) checkCRLs(r *Rule, certs []*x509.Certificate) {
	for _, crl := range r.SPDM.CRLs {
		l := crl.List
		name := "crl " + filepath.Base(crl.File)
		switch {
		case !l.NextUpdate.IsZero() && e.now.After(l.NextUpdate):
			e.check(name, "current (nextUpdate in the future)", "expired "+l.NextUpdate.UTC().Format(time.RFC3339), false)
			e.deny(CodeCRLExpired, "CRL %s from %s passed its nextUpdate on %s", crl.File, l.Issuer, l.NextUpdate.UTC().Format(time.RFC3339))
			continue
		case e.now.Before(l.ThisUpdate):
			e.check(name, "current (thisUpdate in the past)", "not valid before "+l.ThisUpdate.UTC().Format(time.RFC3339), false)
			e.deny(CodeCRLExpired, "CRL %s is not valid before %s", crl.File, l.ThisUpdate.UTC().Format(time.RFC3339))
			continue
		}
		if len(certs) == 0 {
			if e.chain() != nil && e.chain().Verified {
				e.check(name, "chain certificates to check", "chain DER not available", false)
				e.deny(CodeChainBroken, "revocation could not be checked: the evidence carries no certificate DER")
			}
			continue
		}
		issuerOK := crl.SignedBy != ""
		if !issuerOK {
			for _, x := range certs {
				if bytes.Equal(x.RawSubject, l.RawIssuer) {
					if err := l.CheckSignatureFrom(x); err != nil {
						e.check(name, "signed by its issuer", "signature invalid: "+err.Error(), false)
						e.deny(CodeCRLInvalid, "CRL %s claims issuer %s, but its signature does not verify against that certificate in the chain", crl.File, l.Issuer)
						break
					}
					issuerOK = true
					break
				}
			}
		}
		if !issuerOK {
			if !slices.ContainsFunc(e.v.Reasons, func(r Reason) bool { return r.Code == CodeCRLInvalid }) {
				e.check(name, "covers the chain", "issuer "+l.Issuer.String()+" not in this chain", true)
			}
			continue
		}
		revoked := ""
		for _, x := range certs {
			if !bytes.Equal(x.RawIssuer, l.RawIssuer) {
				continue
			}
			for _, rc := range l.RevokedCertificateEntries {
				if rc.SerialNumber != nil && rc.SerialNumber.Cmp(x.SerialNumber) == 0 {
					revoked = fmt.Sprintf("%s (serial %s) revoked on %s", x.Subject, x.SerialNumber, rc.RevocationTime.UTC().Format("2006-01-02"))
				}
			}
		}
		if revoked != "" {
			e.check(name, "no certificate of the chain revoked", revoked, false)
			e.deny(CodeRevoked, "%s by CRL %s", revoked, crl.File)
		} else {
			e.check(name, "no certificate of the chain revoked", "none revoked", true)
		}
	}
}

func (e *eval) checkSAN(r *Rule) {
	c := e.chain()
	if c == nil || !c.Verified {
		if r.SPDM.RequireCMASAN {
			e.check("spdm.require_cma_san", "leaf CMA SAN naming this device", "no verified chain", false)
		}
		return
	}
	san := c.CMASAN
	if san == nil {
		e.check("cma_san", "present and naming this device", "absent", !r.SPDM.RequireCMASAN)
		if r.SPDM.RequireCMASAN {
			e.deny(CodeSANMismatch, "the leaf certificate carries no CMA subjectAltName and rule %q requires one", r.Name)
		}
		return
	}
	id := e.ev.Identity
	var bad []string
	// A socket device's identity is what the operator said (vendor and
	// device) or was taken from this very SAN: only those IDs are known.
	socket := id.Socket != "" && id.BDF == ""
	if san.VendorID != id.VendorID {
		bad = append(bad, fmt.Sprintf("vendor 0x%04x != 0x%04x", san.VendorID, id.VendorID))
	}
	if san.DeviceID != id.DeviceID {
		bad = append(bad, fmt.Sprintf("device 0x%04x != 0x%04x", san.DeviceID, id.DeviceID))
	}
	if !socket && san.Class != id.Class {
		bad = append(bad, fmt.Sprintf("class 0x%06x != 0x%06x", san.Class, id.Class))
	}
	if !socket && san.Revision != id.Revision {
		bad = append(bad, fmt.Sprintf("revision 0x%02x != 0x%02x", san.Revision, id.Revision))
	}
	if !socket && san.SubsystemVendorID != nil && *san.SubsystemVendorID != id.SubsystemVendorID {
		bad = append(bad, fmt.Sprintf("subsystem vendor 0x%04x != 0x%04x", *san.SubsystemVendorID, id.SubsystemVendorID))
	}
	if !socket && san.SubsystemID != nil && *san.SubsystemID != id.SubsystemID {
		bad = append(bad, fmt.Sprintf("subsystem 0x%04x != 0x%04x", *san.SubsystemID, id.SubsystemID))
	}
	if !socket && san.DSN != nil && (id.DSN == nil || *san.DSN != *id.DSN) {
		bad = append(bad, "device serial number differs")
	}
	if len(bad) == 0 && san.MatchesIdentity != nil && !*san.MatchesIdentity {
		bad = append(bad, "attest reported a mismatch")
	}
	if len(bad) > 0 {
		e.check("cma_san", "naming this device", san.Raw+" ("+strings.Join(bad, ", ")+")", false)
		e.deny(CodeSANMismatch, "the CMA SAN %q does not match the device (%s)", san.Raw, strings.Join(bad, ", "))
		return
	}
	e.check("cma_san", "naming this device", san.Raw, true)
}

// DMTF measurement value types used here (DSP0274 1.2 "DMTFSpecMeasurementValueType").
const (
	typeDeviceMode = 5
	typeSVN        = 7
)

func (e *eval) checkMeasurements(m *Measurements) {
	ev := e.ev
	if m.RequireSigned {
		e.check("measurements.require_signed", "signature verified", yesNo(ev.MeasurementsSignatureVerified), ev.MeasurementsSignatureVerified)
		if !ev.MeasurementsSignatureVerified && !e.stopped {
			e.deny(CodeSignatureInvalid, "the measurements were not signed, or their signature was not verified")
		}
	}
	idxs := make([]int, 0, len(m.Reference))
	for i := range m.Reference {
		idxs = append(idxs, int(i))
	}
	slices.Sort(idxs)
	for _, i := range idxs {
		e.checkReference(uint8(i), m.Reference[uint8(i)])
	}
	if m.MinSVN != nil {
		name, exp := "measurements.min_svn", fmt.Sprintf(">= %d", *m.MinSVN)
		blocks := e.blocksOfType(typeSVN)
		switch {
		case len(blocks) == 0:
			e.check(name, exp, e.missing(), false)
			if !e.stopped {
				e.deny(CodeMeasurementMissing, "the device reported no firmware SVN measurement (type 7)")
			}
		default:
			svn, ok := uint64(0), true
			for i, b := range blocks {
				if !b.Raw || len(b.Value) != 8 {
					ok = false
					break
				}
				v := binary.LittleEndian.Uint64(b.Value)
				if i == 0 || v < svn {
					svn = v
				}
			}
			switch {
			case !ok:
				e.check(name, exp, "malformed SVN block", false)
				e.deny(CodeProtocol, "the firmware SVN measurement is not an 8-byte raw value")
			case svn < *m.MinSVN:
				e.check(name, exp, strconv.FormatUint(svn, 10), false)
				e.deny(CodeSVNTooLow, "the firmware SVN is %d, the rule needs at least %d", svn, *m.MinSVN)
			default:
				e.check(name, exp, strconv.FormatUint(svn, 10), true)
			}
		}
	}
	if m.ForbidDebugMode {
		name, exp := "measurements.forbid_debug_mode", "no debug mode active or ever active"
		blocks := e.blocksOfType(typeDeviceMode)
		if len(blocks) == 0 {
			e.check(name, exp, e.missing(), false)
			if !e.stopped {
				e.deny(CodeMeasurementMissing, "the device reported no device-mode measurement (type 5)")
			}
			return
		}
		for _, b := range blocks {
			// OperationalModeCapabilities, OperationalModeState,
			// DeviceModeCapabilities, DeviceModeState: 4 x uint32 LE.
			if !b.Raw || len(b.Value) != 16 {
				e.check(name, exp, "malformed device-mode block", false)
				e.deny(CodeProtocol, "the device-mode measurement is not a 16-byte raw value")
				return
			}
			state := binary.LittleEndian.Uint32(b.Value[12:])
			if state&0x1f != 0 {
				e.check(name, exp, fmt.Sprintf("DeviceModeState 0x%08x", state), false)
				e.deny(CodeDebugMode, "DeviceModeState is 0x%08x (debug bits %s)", state, debugBits(state))
				return
			}
		}
		e.check(name, exp, "normal", true)
	}
}

func (e *eval) missing() string {
	if e.stopped {
		return "not reached"
	}
	return "not reported"
}

func debugBits(s uint32) string {
	names := []string{"non-invasive active", "invasive active", "non-invasive has been active", "invasive has been active", "invasive active after manufacturing"}
	var out []string
	for i, n := range names {
		if s&(1<<i) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ", ")
}

func (e *eval) blocksOfType(t uint8) []attest.MeasurementBlock {
	var out []attest.MeasurementBlock
	for _, b := range e.ev.Measurements {
		if b.Spec&1 != 0 && b.Type == t {
			out = append(out, b)
		}
	}
	return out
}

func (e *eval) checkReference(idx uint8, refs []Digest) {
	name := fmt.Sprintf("measurements.reference[%d]", idx)
	alts := make([]string, len(refs))
	for i, r := range refs {
		alts[i] = r.String()
	}
	exp := "one of " + strings.Join(alts, ", ")
	var found []attest.MeasurementBlock
	for _, b := range e.ev.Measurements {
		if b.Index == idx {
			found = append(found, b)
		}
	}
	switch len(found) {
	case 0:
		e.check(name, exp, e.missing(), false)
		if !e.stopped {
			e.deny(CodeMeasurementMissing, "the device reported no measurement at index %d", idx)
		}
		return
	case 1:
	default:
		e.check(name, exp, fmt.Sprintf("%d blocks with index %d", len(found), idx), false)
		e.deny(CodeMeasurementMismatch, "the device reported index %d %d times", idx, len(found))
		return
	}
	b := found[0]
	devAlg := RefAlg(e.ev.Algorithms.MeasurementHash)
	got := fmt.Sprintf("%x", []byte(b.Value))
	if devAlg != "" && !b.Raw {
		got = devAlg + ":" + got
	}
	for _, r := range refs {
		if b.Spec&1 == 0 {
			break // not a DMTF block: no defined value to compare
		}
		if b.Raw {
			if bytes.Equal(DigestOf(r.Alg, b.Value), r.Value) {
				e.check(name, exp, r.Alg+" of raw value matches", true)
				return
			}
			continue
		}
		if (devAlg == "" || devAlg == r.Alg) && bytes.Equal(b.Value, r.Value) {
			e.check(name, exp, got, true)
			return
		}
	}
	e.check(name, exp, got, false)
	e.deny(CodeMeasurementMismatch, "measurement %d is %s", idx, shorten(got))
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}
