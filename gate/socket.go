package gate

import (
	"context"
	"errors"

	"github.com/vfio-gate/vfio-gate/attest"
	"github.com/vfio-gate/vfio-gate/policy"
	"github.com/vfio-gate/vfio-gate/target"
)

// CheckSocket attests a responder behind the spdm-socket protocol at addr
// (HOST:PORT: DMTF spdm-emu, `vfio-gate emulate`), evaluates it against the
// policy with identity id (the operator's word for what the device is; zero
// IDs = take them from the leaf's CMA SAN) and records the decision. No
// sysfs function is involved, so there is no lock and nothing to bind.
func (g *Gate) CheckSocket(ctx context.Context, addr string, id attest.Identity, confidential bool) (Decision, error) {
	id.Socket = addr
	it := &item{}
	it.d.Identity = id
	var ev *attest.Evidence
	c, err := (&target.Socket{Addr: addr}).Open(ctx)
	if err == nil {
		o := g.attestOptions(id, 1)
		if g.o.Policy.NeedsFor(id).Session {
			// A rule that may match requires a session (or a locked TDI,
			// which a socket device cannot be assigned with: its rule
			// denies tdisp-not-locked).
			o.Session, o.SecuredTransport = true, c.Secured
		}
		ev, err = attest.Transport(ctx, c.CMA, id, o)
		c.Close()
	}
	if err != nil || ev == nil {
		kind := attest.FailTransport
		if errors.Is(err, context.DeadlineExceeded) {
			kind = attest.FailTimeout
		}
		msg := "no evidence"
		if err != nil {
			msg = err.Error()
		}
		ev = &attest.Evidence{Identity: id, Started: g.now(), Failure: &attest.Failure{Step: "connect", Kind: kind, Message: msg}}
	}
	if id.VendorID != 0 || id.DeviceID != 0 {
		completeFromSAN(ev)
	}
	if ev.Identity.Socket == "" {
		ev.Identity.Socket = addr
	}
	it.d.Evidence = ev
	it.d.Identity = ev.Identity
	it.d.Verdict = g.o.Policy.Evaluate(ev, policy.Input{Confidential: confidential, Now: g.now()})
	it.d.EvidenceDigest = ev.Digest()
	g.record(ctx, []*item{it}, confidential)
	return it.d, nil
}

// completeFromSAN fills the identity fields the operator did not give
// (--pci-id names only vendor and device) from the leaf's CMA SAN, when the
// SAN agrees on vendor and device. Otherwise the identity stays as given,
// and the policy's SAN check reports the disagreement (san-mismatch).
func completeFromSAN(ev *attest.Evidence) {
	for _, c := range ev.Chains {
		if c.Slot != ev.Bundle.Slot || !c.Verified || c.CMASAN == nil {
			continue
		}
		s, id := c.CMASAN, &ev.Identity
		if s.VendorID != id.VendorID || s.DeviceID != id.DeviceID {
			return
		}
		if id.Class == 0 && id.Revision == 0 {
			id.Class, id.Revision = s.Class, s.Revision
		}
		if s.SubsystemVendorID != nil && id.SubsystemVendorID == 0 {
			id.SubsystemVendorID = *s.SubsystemVendorID
		}
		if s.SubsystemID != nil && id.SubsystemID == 0 {
			id.SubsystemID = *s.SubsystemID
		}
		if id.DSN == nil {
			id.DSN = s.DSN
		}
		// attest compared the SAN with the partial identity; compare again.
		m := s.Class == id.Class && s.Revision == id.Revision && (s.DSN == nil || id.DSN != nil && *s.DSN == *id.DSN) &&
			(s.SubsystemVendorID == nil || *s.SubsystemVendorID == id.SubsystemVendorID) &&
			(s.SubsystemID == nil || *s.SubsystemID == id.SubsystemID)
		s.MatchesIdentity = &m
		return
	}
}
