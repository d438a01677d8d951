package policy

import "github.com/vfio-gate/vfio-gate/attest"

// Needs is what an attestation must gather before the policy can decide on
// a function: the evidence a rule checks must be there, or the rule denies
// for want of it.
type Needs struct {
	// Session: an SPDM secure session must be established
	// (spdm.require_session, or tdisp.require_lock, whose TDI lives in one).
	Session bool
	// TDISP: the TDI's state must be read inside the session, and, for an
	// assignment, the TDI locked there (tdisp.require_lock).
	TDISP bool
}

// NeedsFor returns what attestation must gather for a function known, before
// attestation, by id (sysfs identity: no DSN yet). Every rule that may
// still turn out to be the matching one counts: the rules that match on a
// DSN id does not have yet, up to and including the first rule that
// matches id outright. With no vendor and device (a socket device
// identified later by its certificate) every rule may match.
func (p *Policy) NeedsFor(id attest.Identity) Needs {
	var n Needs
	add := func(r *Rule) {
		if r.SPDM != nil && r.SPDM.RequireSession {
			n.Session = true
		}
		if r.TDISP != nil && r.TDISP.RequireLock {
			n.Session, n.TDISP = true, true
		}
	}
	unknown := id.VendorID == 0 && id.DeviceID == 0
	for _, r := range p.Rules {
		switch {
		case unknown:
			add(r)
		case r.Match.DSN != nil && id.DSN == nil:
			withDSN := id
			withDSN.DSN = r.Match.DSN
			if r.Match.covers(withDSN) {
				add(r)
			}
		case r.Match.covers(id):
			add(r)
			return n
		}
	}
	return n
}
